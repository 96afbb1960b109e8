"""Text-only blind baselines of a QA dataset with scikit-learn, an independent check of
r1-bench's own (`r1_bench::text_only`, in every data card).

Each option of a multiple-choice question becomes the numbers a reader of the prompt has: the
current position when the prompt prints one, the option (a position, or a movement phrase as
signed levels per axis), their difference and distance, and the task (one-hot). A classifier
scores options, trained on the train split; the question's answer is its best-scoring option.
Accuracy is reported on the test split, held-in tasks (trained on) and held-out tasks apart,
for gradient-boosted trees and for a multilayer perceptron.

    pip install scikit-learn
    python crates/r1-bench/scripts/text_only_baseline.py datasets/default
"""

import argparse
import json
import re
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

TYPES = ["waypoint", "current_state", "movement"]
CURRENT = re.compile(r"Position: \[([^\]]*)\]")
# Each axis phrase of r1's movement labels, positive word first.
AXES = [("forward", "back"), ("right", "left"), ("up", "down")]


def load(root: Path, split: str) -> list[dict]:
    with open(root / "qa" / f"{split}.jsonl") as f:
        return [json.loads(line) for line in f]


def prompt_text(sample: dict) -> str:
    return "\n".join(p["text"] for m in sample["messages"] for p in m["content"] if p["type"] == "text")


def movement_levels(phrase: str) -> list[float]:
    levels = [0.0, 0.0, 0.0]
    for part in re.split(r",\s*(?:and\s+)?|\s+and\s+", phrase):
        size = 1.0 if "slightly" in part else 2.0
        for axis, (positive, negative) in enumerate(AXES):
            if re.search(rf"\b{positive}\b", part):
                levels[axis] += size
            if re.search(rf"\b{negative}\b", part):
                levels[axis] -= size
    return levels


def features(sample: dict, option: str, tasks: list[str]) -> list[float]:
    match = CURRENT.search(prompt_text(sample))
    current = [float(x) for x in match.group(1).split(",")] if match else None
    if sample["qa_type"] == "movement":
        value, offset = movement_levels(option), None
    else:
        value = [float(x) for x in option.strip("[]").split(",")]
        offset = [v - c for v, c in zip(value, current)] if current else None
    return (
        (current or [0.0, 0.0, 0.0])
        + [1.0 if current else 0.0]
        + value
        + (offset or [0.0, 0.0, 0.0])
        + [float(np.linalg.norm(offset)) if offset else 0.0]
        + [1.0 if sample["task"] == t else 0.0 for t in tasks]
    )


def rows(samples: list[dict], qa_type: str, tasks: list[str]):
    x, y, sizes = [], [], []
    for s in samples:
        if s["qa_type"] != qa_type:
            continue
        labels = sorted(s["options"])
        for label in labels:
            x.append(features(s, s["options"][label], tasks))
            y.append(int(label == s["answer"]["label"]))
        sizes.append(len(labels))
    return np.array(x), np.array(y), sizes


def accuracy(model, samples: list[dict], qa_type: str, tasks: list[str]) -> tuple[float, int]:
    x, y, sizes = rows(samples, qa_type, tasks)
    if not sizes:
        return float("nan"), 0
    p = model.predict_proba(x)[:, 1]
    right, start = 0, 0
    for n in sizes:
        right += y[start + int(np.argmax(p[start : start + n]))]
        start += n
    return right / len(sizes), len(sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path, help="QA dataset folder (qa/*.jsonl, card.json)")
    args = parser.parse_args()
    train, test = load(args.dataset, "train"), load(args.dataset, "test")
    held_out = set(json.loads((args.dataset / "card.json").read_text())["config"]["split"]["held_out_tasks"])
    tasks = sorted({s["task"] for s in train})
    models = {
        "boosted trees": lambda: HistGradientBoostingClassifier(max_iter=200, random_state=0),
        "MLP 64-64": lambda: make_pipeline(
            StandardScaler(), MLPClassifier(hidden_layer_sizes=(64, 64), max_iter=2000, random_state=0)
        ),
    }
    print("| model | type | held-in | held-out |\n|---|---|---|---|")
    for name, make in models.items():
        for qa_type in TYPES:
            x, y, _ = rows(train, qa_type, tasks)
            model = make().fit(x, y)
            cells = []
            for keep in (lambda t: t not in held_out, lambda t: t in held_out):
                acc, n = accuracy(model, [s for s in test if keep(s["task"])], qa_type, tasks)
                cells.append(f"{100 * acc:.1f}% of {n}")
            print(f"| {name} | {qa_type} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()

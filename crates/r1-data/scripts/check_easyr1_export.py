#!/usr/bin/env python3
"""Checks an EasyR1 export (`cargo xtask data ... --export easyr1 DIR`) from the Python side.

1. Loads every `*.parquet` with `datasets.load_dataset("parquet", data_files=..., split="train")`,
   the call EasyR1's `RLHFDataset` makes for a file path, and with pyarrow: columns and types,
   the `images` column decoded by `datasets` to PIL images equal to the PNG bytes pyarrow reads,
   one image per `<image>` in `problem` (how EasyR1 pairs them), `answer` as JSON.
2. Imports `reward_function/r1.py` the way EasyR1 loads a reward file and scores, for rows of
   every question type and a few hand-made ground truths, a list of responses (right, wrong,
   malformed, r1's edge cases) under several reward settings; `cargo xtask reward` scores the
   same responses and every component must agree exactly (format, accuracy = r1's answer,
   overall = r1's total).

Usage (from the repository root, after `cargo build --release --workspace --bins`):

    pip install datasets pyarrow pillow
    python3 crates/r1-data/scripts/check_easyr1_export.py            # exports datasets/default
    python3 crates/r1-data/scripts/check_easyr1_export.py --export DIR [--xtask target/release/xtask]

CI does not run this script (CI runs no Python); `crates/r1-data/tests/export.rs` checks the
files with Rust's parquet reader.
"""

import argparse
import importlib.util
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import datasets
import pyarrow
import pyarrow.parquet as pq
from PIL import Image


COLUMNS = ["problem", "answer", "images", "id", "task", "variation", "episode", "frame", "qa_type", "options"]

# Responses for a multiple-choice question whose answer is `right` (another label: `wrong`), and
# the option texts; r1's rules on labels, brackets, full text, format and whitespace.
def choice_responses(right: str, wrong: str, options: dict) -> list:
    return [
        f"<think>It is {right}.</think><answer>[[{right}]]</answer>",
        f"<think>x</think> <answer>[[{wrong}]]</answer>",
        f"<think>x</think>\n<answer>{right}</answer>\n",
        f"<think>x</think><answer>({right.lower()})</answer>",
        f"<think>x</think><answer>{right}.</answer>",
        f"<think>x</think><answer>[[ {right} ]] not [[E]]</answer>",
        f"<think>x</think><answer>[[{right}]] or [[{wrong}]]</answer>",
        f"<think>x</think><answer>[[E]] {right}</answer>",
        f"<think>x</think><answer>  {options[right].upper()}. </answer>",
        f"<think>x</think><answer>{options[right]} or {options[wrong]}</answer>",
        f"<think>x</think><answer>Option {right}</answer>",
        f"[[{right}]]",
        f"<answer>[[{right}]]</answer>",
        f"<think>x</think>so <answer>[[{right}]]</answer>",
        f"<think>x</think><answer>[[{right}]]</answer> done",
        f"<think>a</think><answer>[[{wrong}]]</answer><think>b</think><answer>[[{right}]]</answer>",
        f"<think>maybe <answer>[[{wrong}]]</answer></think>\u00a0<answer>[[{right}]]</answer>",
        f"<think>x</think>\x1c<answer>[[{right}]]</answer>",
        f"\u2003<think>x</think><answer>[[{right}]]</answer>\u3000",
        f"<think>x</think><answer>[[{right}]]",
        f"<think>never closed <answer>[[{right}]]</answer>",
        f"<think>x</think><answer>[[[{right}]]]</answer>",
        "",
    ]


def position_responses(target: list) -> list:
    x, y, z = target
    return [
        f"<think>t</think><answer>[{x!r}, {y!r}, {z!r}]</answer>",
        f"<think>t</think><answer>[{x:.3f}, {y:.3f}, {z:.3f}]</answer>",
        f"<think>t</think><answer>[{x + 0.1:.3f}, {y - 0.05:.3f}, {z:.3f}]</answer>",
        f"<think>t</think><answer>near [1, 2] then [ +{x:.2e} ,{y:.2f},{z:.1f}. ]</answer>",
        f"<think>t</think><answer>[{x:.3f} {y:.3f} {z:.3f}]</answer>",
        "<think>t</think><answer>[1e999, 0, 0]</answer>",
        "<think>t</think><answer>[5, 5, 5]</answer>",
        "<think>t</think><answer>[.5, -.25e1, 3.]</answer>",
        "<think>t</think><answer>[1e, 2, 3]</answer>",
        "<think>t</think><answer>no numbers</answer>",
        f"[{x}, {y}, {z}]",
    ]


MOVEMENT_RESPONSES = [
    "<think>t</think><answer>Move down and slightly right.</answer>",
    "<think>t</think><answer>move down and right</answer>",
    "<think>t</think><answer>move down</answer>",
    "<think>t</think><answer>move down, slightly right and forward</answer>",
    "<think>t</think><answer>move up and down</answer>",
    "<think>t</think><answer>stay still</answer>",
    "<think>t</think><answer>upper frontal leftover</answer>",
    "<think>t</think><answer>slightly move back, slightly move left, and move up</answer>",
]

SETTINGS = [
    {},
    {"format_mode": "paper"},
    {"position": "l2", "format_weight": 0.5, "answer_weight": 2.0},
    {"position": "per_axis"},
]


def xtask_flags(kwargs: dict) -> list:
    weights = f"format={kwargs.get('format_weight', 1.0)},answer={kwargs.get('answer_weight', 1.0)}"
    return ["--format", kwargs.get("format_mode", "strict"), "--position", kwargs.get("position", "l1"), "--weights", weights]


def check_files(export: Path) -> list:
    """Loads every split both ways; returns (id, ground truth) of every row."""
    truths = []
    files = sorted(export.glob("*.parquet"))
    assert files, f"no parquet files in {export}"
    for path in files:
        table = pq.read_table(path)
        assert table.column_names == COLUMNS, table.column_names
        features = json.loads(table.schema.metadata[b"huggingface"])["info"]["features"]
        assert features["images"]["feature"] == {"_type": "Image"}, features["images"]
        ds = datasets.load_dataset("parquet", data_files=str(path), split="train")
        assert len(ds) == table.num_rows
        assert isinstance(ds.features["images"].feature, datasets.Image), ds.features
        raw_images = table.column("images").to_pylist()
        kinds = {}
        for i, row in enumerate(ds):
            # EasyR1 splits `problem` at `<image>` and pairs the pieces with `images` in order.
            pieces = row["problem"].split("<image>")
            assert len(pieces) - 1 == len(row["images"]) == len(raw_images[i]) >= 1, row["id"]
            assert pieces[0] == "" and pieces[-1], row["id"]  # r1's turn: the image, then the text
            truth = json.loads(row["answer"])
            assert truth["qa_type"] == row["qa_type"], row["id"]
            assert (row["options"] is None) == ("options" not in truth), row["id"]
            if row["options"] is not None:
                assert json.loads(row["options"]) == truth["options"], row["id"]
            kinds[row["qa_type"]] = kinds.get(row["qa_type"], 0) + 1
            truths.append((row["id"], truth))
            if i % 50 == 0:
                for image, raw in zip(row["images"], raw_images[i]):
                    assert isinstance(image, Image.Image), type(image)
                    assert raw["bytes"].startswith(b"\x89PNG"), row["id"]
                    original = Image.open(io.BytesIO(raw["bytes"])).convert("RGB")
                    assert image.convert("RGB").tobytes() == original.tobytes(), row["id"]
        print(f"{path.name}: {len(ds)} rows, {table.num_columns} columns, images {ds[0]['images'][0].size} "
              f"{ds[0]['images'][0].mode}, by type {kinds}")
    return truths


def load_reward(export: Path):
    """The reward file, loaded as EasyR1's `AutoRewardManager` loads it."""
    spec = importlib.util.spec_from_file_location("custom_reward_fn", export / "reward_function" / "r1.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.REWARD_TYPE == "batch" and callable(module.compute_score)
    return module


def cases(truths: list) -> list:
    """(ground truth JSON, response) pairs: the first rows of each question type, and hand-made
    movement answers."""
    seen, picked = {}, []
    for _, truth in truths:
        if seen.get(truth["qa_type"], 0) < 3:
            seen[truth["qa_type"]] = seen.get(truth["qa_type"], 0) + 1
            picked.append(truth)
    out = []
    for truth in picked:
        answer = truth["answer"]
        if "label" in answer:
            right = answer["label"]
            wrong = next(label for label in truth["options"] if label != right)
            responses = choice_responses(right, wrong, truth["options"])
        else:
            responses = position_responses(answer["position"])
        out += [(json.dumps(truth), r) for r in responses]
    for reference in ["move down and slightly right", "stay still", "slightly move back, slightly move left, and move up"]:
        truth = json.dumps({"qa_type": "movement", "answer": {"movement": reference}})
        out += [(truth, r) for r in MOVEMENT_RESPONSES]
    return out


def check_rewards(export: Path, xtask: str, truths: list) -> None:
    reward = load_reward(export)
    pairs = cases(truths)
    compared = 0
    with tempfile.TemporaryDirectory() as tmp:
        lines = Path(tmp) / "completions.jsonl"
        lines.write_text(
            "".join(json.dumps({"id": i, "completion": r, **json.loads(t)}) + "\n" for i, (t, r) in enumerate(pairs)),
            encoding="utf-8",
        )
        for kwargs in SETTINGS:
            done = subprocess.run(
                [xtask, "reward", "--input", str(lines), *xtask_flags(kwargs)], capture_output=True, text=True, check=True
            )
            r1 = [json.loads(line)["rewards"] for line in done.stdout.splitlines()]
            ours = reward.compute_score([{"response": r, "ground_truth": t, "response_length": 0} for t, r in pairs], **kwargs)
            assert len(r1) == len(ours) == len(pairs)
            mismatches = [
                (pairs[i][1], r1[i], ours[i])
                for i in range(len(pairs))
                if (r1[i]["format"], r1[i]["answer"], r1[i]["total"])
                != (ours[i]["format"], ours[i]["accuracy"], ours[i]["overall"])
            ]
            for response, theirs, mine in mismatches[:10]:
                print(f"MISMATCH {kwargs} {response!r}: xtask {theirs}, r1.py {mine}")
            assert not mismatches, f"{len(mismatches)} of {len(pairs)} responses disagree under {kwargs}"
            mean = sum(s["overall"] for s in ours) / len(ours)
            print(f"rewards {kwargs or 'r1 defaults'}: {len(pairs)} responses agree with `xtask reward` "
                  f"(mean overall {mean:.4f})")
            compared += len(pairs)
    # A ground truth r1 refuses is refused here too.
    bad = json.dumps({"qa_type": "waypoint", "options": {"A": "x", "B": "y"}, "answer": {"label": "C"}})
    try:
        reward.compute_score([{"response": "<think></think><answer>A</answer>", "ground_truth": bad}])
        raise AssertionError("an answer label outside the options was accepted")
    except ValueError as error:
        print(f"refused as r1 refuses it: {error}")
    print(f"{compared} scores compared, all equal")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--export", type=Path, help="an export folder (default: export datasets/default to a temporary one)")
    parser.add_argument("--xtask", default="target/release/xtask", help="the r1 command line")
    args = parser.parse_args()
    print(f"datasets {datasets.__version__}, pyarrow {pyarrow.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        export = args.export
        if export is None:
            export = Path(tmp) / "easyr1"
            subprocess.run([args.xtask, "data", "--dataset", "datasets/default", "--export", "easyr1", str(export)], check=True)
        truths = check_files(export)
        check_rewards(export, args.xtask, truths)
    print("OK")


if __name__ == "__main__":
    sys.exit(main())

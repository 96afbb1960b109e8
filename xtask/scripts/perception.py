#!/usr/bin/env python3
"""Measures whether a model sees where the gripper is (README: "Perception pretraining").

  perception.py questions DATASET OUT
      Writes to OUT a copy of DATASET's splits that asks, once per frame, the question
      `cargo xtask sft --mode perceive` trains on (`r1_grpo::sft::PERCEIVE_QUESTION`), as open
      questions whose answer is the gripper's current position, so that
      `cargo xtask eval model MODEL --data OUT --no-bench` answers and scores them.
  perception.py score DATASET RECORDS
      Reads an evaluation's records.jsonl and prints, for the first position each reply
      states, its L1 error and correlation per axis with the gripper's true position, the L1
      of always stating the train split's mean position, and on current-state questions how
      often the option nearest the stated position is the right one.
Standard library only.
"""
import json
import os
import re
import sys

# Must stay equal to r1_grpo::sft::PERCEIVE_QUESTION.
PERCEIVE_QUESTION = "Where is the gripper? Give its position [x, y, z] in metres."
POSITION = re.compile(r"\[\s*(-?\d\.\d+),\s*(-?\d\.\d+),\s*(-?\d\.\d+)\s*\]")
SPLITS = ("train", "val", "test")


def rows(dataset, split):
    with open(os.path.join(dataset, "qa", f"{split}.jsonl")) as f:
        return [json.loads(line) for line in f]


def questions(dataset, out):
    os.makedirs(os.path.join(out, "qa"), exist_ok=True)
    images = os.path.join(out, "images")
    if not os.path.exists(images):
        os.symlink(os.path.abspath(os.path.join(dataset, "images")), images)
    with open(os.path.join(dataset, "card.json")) as src, open(os.path.join(out, "card.json"), "w") as dst:
        dst.write(src.read())
    for split in SPLITS:
        seen = set()
        with open(os.path.join(out, "qa", f"{split}.jsonl"), "w") as f:
            for r in rows(dataset, split):
                image = r["messages"][0]["content"][0]["image"]
                if image in seen:
                    continue
                seen.add(image)
                r["id"] = f"{image}/perceive"
                r["qa_type"] = "waypoint_open"
                r["messages"] = [{"role": "user", "content": [{"type": "image", "image": image},
                                                              {"type": "text", "text": PERCEIVE_QUESTION}]}]
                r.pop("options", None)
                r["answer"] = {"position": r["state"]["current"]}
                f.write(json.dumps(r) + "\n")
        print(f"{split}: {len(seen)} frames")


def corr(a, b):
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    va, vb = sum((x - ma) ** 2 for x in a), sum((y - mb) ** 2 for y in b)
    return sum((x - ma) * (y - mb) for x, y in zip(a, b)) / ((va * vb) ** 0.5 or float("nan"))


def l1(p, t):
    return sum(abs(a - b) for a, b in zip(p, t))


def summary(name, found, mean):
    """Prints how the stated positions of `found` [(stated, truth row)] compare with the truth."""
    n = len(found)
    true = [r["state"]["current"] for _, r in found]
    stated = [p for p, _ in found]
    print(f"{name}: {n} positions, L1 error {sum(l1(p, t) for p, t in zip(stated, true)) / n:.3f} m "
          f"(always the train split's mean: {sum(l1(mean, t) for t in true) / n:.3f} m)")
    for i, axis in enumerate("xyz"):
        err = sum(abs(p[i] - t[i]) for p, t in zip(stated, true)) / n
        base = sum(abs(mean[i] - t[i]) for t in true) / n
        print(f"  {axis}: error {err:.3f} m (mean: {base:.3f} m), "
              f"correlation {corr([p[i] for p in stated], [t[i] for t in true]):.2f}")
    choices = [(p, r) for p, r in found if r["qa_type"] == "current_state"]
    if choices:
        near = 0
        for p, r in choices:
            options = {k: [float(x) for x in v.strip("[]").split(",")] for k, v in r["options"].items()}
            near += min(options, key=lambda k: l1(options[k], p)) == r["answer"]["label"]
        print(f"  current-state questions: the option nearest the stated position is right in {near} of "
              f"{len(choices)} ({100 * near / len(choices):.1f}%; chance 25%)")


def score(dataset, records):
    truth = {r["id"]: r for split in SPLITS for r in rows(dataset, split)}
    train = [r["state"]["current"] for r in rows(dataset, "train")]
    mean = [sum(t[i] for t in train) / len(train) for i in range(3)]
    found, replies = {}, 0
    with open(records) as f:
        for line in f:
            rec = json.loads(line)
            replies += 1
            m = POSITION.search(rec["scores"][0]["completion"]["text"])
            if m:
                stated = [float(x) for x in m.groups()]
                found.setdefault(rec.get("split", "all"), []).append((stated, truth[rec["id"]]))
    everything = [x for group in found.values() for x in group]
    if not everything:
        sys.exit(f"{records}: none of the {replies} replies states a position [x, y, z]")
    print(f"{len(everything)} of {replies} replies state a position")
    summary("all", everything, mean)
    if len(found) > 1:
        for split in sorted(found):
            summary(f"split {split}", found[split], mean)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "questions":
        questions(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "score":
        score(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)

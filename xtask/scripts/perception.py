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
  perception.py compare DATASET OUT sparse|dense|axes|axes-copy|tenths|tenths-copy|pairs|pairs-aligned|order|threshold [N]
      Writes to OUT a text-only dataset that asks for the option nearest a stated position:
      the gripper's position stated to the centimetre (as `sft --mode perceive` teaches it,
      with an error of about the tiny model's), after four options drawn from DATASET's real
      gripper positions (its train split for OUT's train split, its test split for OUT's test
      split; the three others at least 0.15 m from the truth). Its CoT target states the
      position, then judges the options and gives the label: nothing (sparse); every option
      near or far (dense); every option's x, y and z within 5 cm or not (axes; axes-copy: each
      judgement after the two numbers it compares: `x 0.31 0.365 far`); every option's
      x, y and z the same as the stated one as written up to the tenths digit or not (tenths:
      a match of digits, no arithmetic; the label is the first option with the most matches,
      not always the nearest, and `state.current` keeps the truth); as tenths, each judgement
      after the two numbers it compares, cut to the tenths digit: `x 0.3 0.3 same`
      (tenths-copy). A probe of whether the model can learn the comparison the current-state
      question needs. N training questions (default 20000), 500 test questions.
      The pair styles ask one one-dimensional step alone, as a two-option question (yes or no)
      about one coordinate of a real gripper position, stated (two decimals for pairs, three
      for the others) with the error above, and a second number (three decimals) half the time
      within 0.05 of it; the CoT target is a word (near or far, else yes or no). From hardest
      to easiest:
      pairs and pairs-aligned: is the second within 0.05 of the stated one? order: is it
      greater? threshold: is the stated one greater than 0.500 (no second number)?
  perception.py judge PROBE RECORDS
      Reads an evaluation's records.jsonl of a four-option probe above and prints how often
      the label is the taught one and the true option; of replies that judge every option's
      x, y and z (axes, axes-copy, tenths, tenths-copy), how often the label follows those judgements,
      and per axis how often they are as taught, next to always writing the commoner word.
Standard library only.
"""
import json
import os
import random
import re
import sys
from collections import Counter

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


def fmt(p, places):
    return "[" + ", ".join(f"{v:.{places}f}" for v in p) + "]"


def tenths(v, places):
    """`v` written to `places` decimals, cut after its tenths digit: `-0.051` -> `-0.0`."""
    return f"{v:.{places}f}"[:-(places - 1)]


def compare_question(rng, pool, style, i, split):
    """One synthetic comparison question: four options from `pool`, the stated position near one."""
    truth = rng.choice(pool)
    distractors = [p for p in rng.sample(pool, min(40, len(pool))) if l1(p, truth) >= 0.15][:3]
    if len(distractors) < 3:
        return None
    stated = [round(v + rng.gauss(0.0, 0.015), 2) for v in truth]
    labels = "ABCD"
    positions = distractors + [truth]
    rng.shuffle(positions)
    nearest = min(range(4), key=lambda k: l1(positions[k], stated))
    if style.startswith("tenths"):
        same = [[tenths(positions[k][axis], 3) == tenths(stated[axis], 2) for axis in range(3)] for k in range(4)]
        nearest = max(range(4), key=lambda k: sum(same[k]))
    answer = labels[nearest]
    options = {labels[k]: fmt(p, 3) for k, p in enumerate(positions)}
    text = ("Which option is the current position of the gripper? Choose the most accurate option.\n"
            + "".join(f"[[{k}]] {v}\n" for k, v in options.items())
            + f"The gripper is at {fmt(stated, 2)}.\n"
            + "First think inside <think> </think>, then give the label inside <answer> </answer>.")
    reasoning = f"The gripper is at {fmt(stated, 2)}."
    if style == "dense":
        reasoning += "".join(f" [[{k}]] {'near' if k == answer else 'far'}." for k in labels)
    elif style != "sparse":
        # Per option and axis: the two numbers as the -copy styles write them, and the judgement.
        if style.startswith("axes"):
            written = lambda v, places: f"{v:.{places}f}"
            word = lambda k, axis: "near" if abs(positions[k][axis] - stated[axis]) < 0.05 else "far"
        else:
            written = tenths
            word = lambda k, axis: "same" if same[k][axis] else "differ"

        def judged(k, axis):
            operands = f"{written(stated[axis], 2)} {written(positions[k][axis], 3)} " if style.endswith("-copy") else ""
            return f"{'xyz'[axis]} {operands}{word(k, axis)}"

        reasoning += "".join(f" [[{labels[k]}]] {judged(k, 0)}, {judged(k, 1)}, {judged(k, 2)}." for k in range(4))
    return {"id": f"compare/{split}/{i}/current_state", "task": "compare", "variation": 0, "episode": i,
            "frame": 0, "keypoint_frame": 0, "qa_type": "current_state",
            "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
            "options": options, "answer": {"label": answer},
            "state": {"current": truth, "target": truth, "movement": "", "gripper_open": True,
                      "target_gripper_open": True},
            "sft": {"direct": f"[[{answer}]]", "cot": f"<think>{reasoning}</think> <answer>[[{answer}]]</answer>"}}


PAIR_STYLES = ("pairs", "pairs-aligned", "order", "threshold")


def pair_question(rng, pool, style, i, split):
    """One two-option question about one coordinate: see the pair styles in the docstring."""
    truth = rng.choice(pool)[rng.randrange(3)]
    places = 2 if style == "pairs" else 3
    stated = round(truth + rng.gauss(0.0, 0.015), places)
    offset = rng.uniform(-0.05, 0.05) if rng.random() < 0.5 else rng.choice((-1, 1)) * rng.uniform(0.05, 0.25)
    other = round(truth + offset, 3)
    if style == "threshold":
        question, yes = f"Is {stated:.3f} greater than 0.500?", stated > 0.5
    elif style == "order":
        question, yes = f"Is {other:.3f} greater than {stated:.3f}?", other > stated
    else:
        question, yes = f"Is {other:.3f} within 0.05 of {stated:.{places}f}?", abs(stated - other) < 0.05
    answer = "A" if yes else "B"
    word = ("yes" if yes else "no") if style in ("order", "threshold") else ("near" if yes else "far")
    text = (f"{question}\n[[A]] yes\n[[B]] no\n"
            "First think inside <think> </think>, then give the label inside <answer> </answer>.")
    return {"id": f"compare/{split}/{i}/current_state", "task": "compare", "variation": 0, "episode": i,
            "frame": 0, "keypoint_frame": 0, "qa_type": "current_state",
            "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
            "options": {"A": "yes", "B": "no"}, "answer": {"label": answer},
            "state": {"current": [stated] * 3, "target": [stated] * 3, "movement": "", "gripper_open": True,
                      "target_gripper_open": True},
            "sft": {"direct": f"[[{answer}]]",
                    "cot": f"<think>{word}.</think> <answer>[[{answer}]]</answer>"}}


def compare(dataset, out, style, n):
    if style not in ("sparse", "dense", "axes", "axes-copy", "tenths", "tenths-copy") + PAIR_STYLES:
        sys.exit(f"style must be one of sparse, dense, axes, axes-copy, tenths, tenths-copy, {', '.join(PAIR_STYLES)}, not {style}")
    make = pair_question if style in PAIR_STYLES else compare_question
    rng = random.Random(0)
    # No card.json: DATASET's blind baselines say nothing of these questions.
    os.makedirs(os.path.join(out, "qa"), exist_ok=True)
    for split, source, count in (("train", "train", n), ("val", "val", 100), ("test", "test", 500)):
        pool = [list(p) for p in sorted({tuple(r["state"]["current"]) for r in rows(dataset, source)})]
        with open(os.path.join(out, "qa", f"{split}.jsonl"), "w") as f:
            written = misses = 0
            while written < count:
                q = make(rng, pool, style, written, split)
                if q:
                    f.write(json.dumps(q) + "\n")
                    written, misses = written + 1, 0
                elif (misses := misses + 1) == 1000:
                    sys.exit(f"{dataset} {source}: too few gripper positions 0.15 m apart for four options")
        print(f"{split}: {count} questions")


JUDGEMENTS = re.compile(r"x (?:\S+ \S+ )?(\w+), y (?:\S+ \S+ )?(\w+), z (?:\S+ \S+ )?(\w+)\.")
LABEL = re.compile(r"<answer>\[\[(\w)\]\]")


def judge(probe, records):
    taught = {r["id"]: r for r in rows(probe, "test")}
    right, base = [0, 0, 0], [Counter(), Counter(), Counter()]
    n = as_taught = true_option = judged = follows = 0
    labels = Counter()
    with open(records) as f:
        for line in f:
            rec = json.loads(line)
            q, text = taught[rec["id"]], rec["scores"][0]["completion"]["text"]
            m = LABEL.search(text)
            label = m.group(1) if m else None
            n, labels[label] = n + 1, labels[label] + 1
            as_taught += label == q["answer"]["label"]
            true_option += label is not None and q["options"].get(label) == fmt(q["state"]["current"], 3)
            gold, got = JUDGEMENTS.findall(q["sft"]["cot"]), JUDGEMENTS.findall(text)
            if len(got) != 4 or len(gold) != 4:
                continue
            judged += 1
            for k in range(4):
                for axis in range(3):
                    right[axis] += got[k][axis] == gold[k][axis]
                    base[axis][gold[k][axis]] += 1
            matches = [sum(w in ("near", "same") for w in g) for g in got]
            follows += label == "ABCD"[max(range(4), key=lambda k: matches[k])]
    if not n:
        sys.exit(f"{records}: no replies")
    print(f"{n} replies: the taught label {as_taught / n:.1%}, the true option {true_option / n:.1%}; "
          f"labels given {dict(sorted(labels.items(), key=str))}")
    if judged:
        print(f"{judged} replies judge every axis of every option; the label is the first option "
              f"with the most near/same judgements in {follows / judged:.1%}")
    for axis in range(3):
        total = sum(base[axis].values())
        if total:
            print(f"  {'xyz'[axis]}: judged as taught {right[axis] / total:.1%}, "
                  f"always the commoner word {max(base[axis].values()) / total:.1%}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "questions":
        questions(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "score":
        score(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "judge":
        judge(sys.argv[2], sys.argv[3])
    elif len(sys.argv) in (5, 6) and sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]) if len(sys.argv) == 6 else 20000)
    else:
        sys.exit(__doc__)

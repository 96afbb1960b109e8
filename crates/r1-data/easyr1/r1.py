"""Robot-R1's rewards as an EasyR1 reward function, written by `cargo xtask data --export easyr1`.

Set in EasyR1's config: `worker.reward.reward_function: <this file>:compute_score`. Each
`ground_truth` is a row's `answer` column: JSON `{"qa_type", "options"?, "answer"}` with the
answer typed as r1-data writes it (`{"label": "B"}`, `{"position": [x, y, z]}` or
`{"movement": "..."}`).

This file re-implements the rules of the Rust crate `r1-reward` (r1's trainer scores with those),
function for function, so that EasyR1 trains on the same reward:

| here                 | r1-reward                                   |
|----------------------|---------------------------------------------|
| `_tags`              | `tags::tags`                                |
| `format_reward`      | `format::format_reward` (`strict`, `paper`) |
| `extract_answer`     | `extract::extract_answer`                   |
| `named_options`      | `choice::named_options`                     |
| `check_options`      | `choice::check_options`                     |
| `parse_position`     | `position::parse_position`                  |
| `position_reward`    | `position::position_reward` (l1, l2, per_axis) |
| `parse_movement`     | `movement::parse_movement`                  |
| `movement_credit`    | `movement::movement_credit`                 |
| `score`              | `compose::RewardFn::score_parts`            |

Returned per response: `overall` (r1's `total`: format_weight * format + answer_weight *
accuracy), `format` (r1's `format`, 0 or 1) and `accuracy` (r1's `answer`, in [0, 1]); EasyR1
logs each key. The defaults are r1's (strict format, L1 position reward, both weights 1); change
them with `worker.reward.reward_function_kwargs`, e.g. `{format_mode: paper}`.
A ground truth that cannot be scored (unknown question type, answer label not among the options)
raises ValueError, as r1 refuses such a sample; a bad response never raises, it earns 0.

`crates/r1-data/scripts/check_easyr1_export.py` in r1's repository checks that this file and
`cargo xtask reward` agree on a list of responses.
"""

import json
import math
import re
from typing import Any, Optional


REWARD_NAME = "r1"
REWARD_TYPE = "batch"

# Rust's `char::is_whitespace` (Unicode White_Space). Python's `str.isspace` and `\s` also count
# U+001C..U+001F, which Rust does not, so whitespace is spelled out here.
_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE = range(4)
_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
# One decimal number as `position::number` reads it; the exponent counts only with digits.
_WS = "[" + re.escape(_WHITESPACE) + "]*"
_NUMBER = r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
_TRIPLE = re.compile(_WS + _NUMBER + _WS + "," + _WS + _NUMBER + _WS + "," + _WS + _NUMBER + _WS + r"\]")
_WORDS = re.compile(r"[A-Za-z]+")
_DIRECTIONS = {
    "forward": (0, True), "forwards": (0, True), "front": (0, True),
    "backward": (0, False), "backwards": (0, False), "back": (0, False),
    "right": (1, True), "left": (1, False),
    "up": (2, True), "upward": (2, True), "upwards": (2, True),
    "down": (2, False), "downward": (2, False), "downwards": (2, False),
}
# The largest float below 1: what a position off the target by less than float resolution gets.
_BELOW_ONE = 1.0 - 2.0**-53


def _trim(text: str) -> str:
    return text.strip(_WHITESPACE)


def _is_whitespace(text: str) -> bool:
    return all(c in _WHITESPACE for c in text)


def _ascii_lower(text: str) -> str:
    return "".join(c.lower() if "A" <= c <= "Z" else c for c in text)


def _tags(text: str) -> list[tuple[int, int]]:
    """Every tag as (offset, tag index), left to right. Tags cannot overlap: each has one `<`."""
    found = []
    pos = text.find("<")
    while pos != -1:
        for tag, spelled in enumerate(_TAGS):
            if text.startswith(spelled, pos):
                found.append((pos, tag))
                pos += len(spelled) - 1
                break
        pos = text.find("<", pos + 1)
    return found


def _is_strict(text: str) -> bool:
    at: list[Optional[int]] = [None] * 4
    for pos, tag in _tags(text):
        if at[tag] is not None:
            return False
        at[tag] = pos
    if None in at:
        return False
    think_open, think_close, answer_open, answer_close = at
    return (
        think_open == 0
        and answer_close + len(_TAGS[ANSWER_CLOSE]) == len(text)
        and think_close < answer_open < answer_close
        and _is_whitespace(text[think_close + len(_TAGS[THINK_CLOSE]) : answer_open])
    )


def _is_paper(text: str) -> bool:
    """`<think>.*?</think>\\s*<answer>.*?</answer>` as a full match, without the regex."""
    if not text.startswith(_TAGS[THINK_OPEN]):
        return False
    body = text[len(_TAGS[THINK_OPEN]) :]
    if not body.endswith(_TAGS[ANSWER_CLOSE]):
        return False
    body = body[: len(body) - len(_TAGS[ANSWER_CLOSE])]
    start = body.find(_TAGS[THINK_CLOSE])
    while start != -1:
        after = start + len(_TAGS[THINK_CLOSE])
        if body[after:].lstrip(_WHITESPACE).startswith(_TAGS[ANSWER_OPEN]):
            return True
        start = body.find(_TAGS[THINK_CLOSE], after)
    return False


def format_reward(response: str, mode: str = "strict") -> float:
    """1.0 when the trimmed response is `<think>`...`</think>`, whitespace, `<answer>`...`</answer>`
    (`strict`: each tag once, nothing else; `paper`: the paper's regex), else 0.0."""
    text = _trim(response)
    if mode == "strict":
        return 1.0 if _is_strict(text) else 0.0
    if mode == "paper":
        return 1.0 if _is_paper(text) else 0.0
    raise ValueError(f"unknown format {mode!r} (expected strict or paper)")


def extract_answer(response: str) -> Optional[str]:
    """The content of the one `<answer>` block outside `<think>`; None for none, several, a
    block holding another tag, or an answer left open at the end."""
    outside, think, answer = 0, 1, 2
    state, start, found = outside, 0, None
    for pos, tag in _tags(response):
        if state == outside:
            if tag == THINK_OPEN:
                state = think
            elif tag == ANSWER_OPEN:
                state, start = answer, pos + len(_TAGS[ANSWER_OPEN])
        elif state == think:
            if tag == THINK_CLOSE:
                state = outside
        elif tag == ANSWER_CLOSE:
            if found is not None:
                return None
            found, state = response[start:pos], outside
        else:
            return None
    return None if state == answer else found


def _bracketed_labels(text: str) -> list[str]:
    labels = []
    i = text.find("[[")
    while i != -1:
        inner = i + 2
        while inner < len(text) and text[inner] in _WHITESPACE:
            inner += 1
        end = inner
        while end < len(text) and text[end] in _ALNUM:
            end += 1
        after = end
        while after < len(text) and text[after] in _WHITESPACE:
            after += 1
        if end > inner and text.startswith("]]", after):
            labels.append(text[inner:end])
            i = text.find("[[", after + 2)
        else:
            i = text.find("[[", i + 1)
    return labels


def _normalised(text: str) -> str:
    text = _trim(text)
    if text.endswith("."):
        text = text[:-1]
    # Character by character, as Rust's `char::to_lowercase` (no final-sigma context rule).
    return "".join(c.lower() for c in text if c not in _WHITESPACE)


def named_options(answer: str, options: dict[str, str]) -> Optional[str]:
    """The one label `answer` names (by `[[B]]`, else a lone `B`/`(B)`/`B.`, else an option's whole
    text), "" when it names several options, None when it names none."""

    def label_of(written: str) -> Optional[str]:
        lowered = _ascii_lower(written)
        return next((label for label in sorted(options) if _ascii_lower(label) == lowered), None)

    named: Optional[str] = None

    def add(label: str) -> None:
        nonlocal named
        named = label if named is None or named == label else ""

    bracketed = _bracketed_labels(answer)
    if bracketed:
        for written in bracketed:
            label = label_of(written)
            if label is not None:
                add(label)
        return named
    trimmed = _trim(answer)
    if trimmed.startswith("(") and trimmed.endswith(")") and len(trimmed) >= 2:
        lone = trimmed[1:-1]
    elif trimmed.endswith("."):
        lone = trimmed[:-1]
    else:
        lone = trimmed
    label = label_of(_trim(lone))
    if label is not None:
        return label
    given = _normalised(answer)
    for label in sorted(options):
        if _normalised(options[label]) == given:
            add(label)
    return named


def check_options(options: dict[str, str], correct: str) -> None:
    """Raises ValueError unless every label is ASCII letters or digits, no option text is blank,
    and `correct` is a label."""
    for label, text in options.items():
        if not label or any(c not in _ALNUM for c in label):
            raise ValueError(f"option {label!r}: labels must be ASCII letters or digits")
        if not _normalised(text):
            raise ValueError(f"option {label!r}: the option text is blank")
    if correct not in options:
        raise ValueError(f"answer label {correct!r} is not one of the options ({', '.join(sorted(options))})")


def parse_position(text: str) -> Optional[tuple[float, float, float]]:
    """The first `[x, y, z]` of decimal numbers in `text`."""
    i = text.find("[")
    while i != -1:
        match = _TRIPLE.match(text, i + 1)
        if match:
            return (float(match.group(1)), float(match.group(2)), float(match.group(3)))
        i = text.find("[", i + 1)
    return None


def position_reward(prediction, target, metric: str = "l1") -> float:
    """clip(1 - L1, 0, 1) (`l1`), clip(1 - L2, 0, 1) (`l2`) or the mean per-axis clip(1 - |e|, 0, 1)
    (`per_axis`), in metres; exactly 1 only at the target, 0 for non-finite values."""
    if metric not in ("l1", "l2", "per_axis"):
        raise ValueError(f"unknown position metric {metric!r} (expected l1, l2 or per_axis)")
    if not all(math.isfinite(v) for v in (*prediction, *target)):
        return 0.0
    if tuple(prediction) == tuple(target):
        return 1.0
    e = [abs(p - t) for p, t in zip(prediction, target)]

    def clip(v: float) -> float:
        return min(max(v, 0.0), 1.0)

    if metric == "l1":
        reward = clip(1.0 - (e[0] + e[1] + e[2]))
    elif metric == "l2":
        reward = clip(1.0 - math.sqrt(e[0] * e[0] + e[1] * e[1] + e[2] * e[2]))
    else:
        reward = (clip(1.0 - e[0]) + clip(1.0 - e[1]) + clip(1.0 - e[2])) / 3.0
    return min(reward, _BELOW_ONE)


def parse_movement(text: str) -> Optional[list[Optional[tuple[bool, bool]]]]:
    """Per axis (x forward, y right, z up) None or (positive, slightly); None when the text names
    no direction (and is not "still") or contradicts itself along an axis."""
    steps: list[Optional[tuple[bool, bool]]] = [None, None, None]
    slight = still = False
    for word in _WORDS.findall(text):
        word = _ascii_lower(word)
        if word == "slightly":
            slight = True
        elif word == "still":
            still = True
        elif word in _DIRECTIONS:
            axis, positive = _DIRECTIONS[word]
            step = (positive, slight)
            if steps[axis] is not None and steps[axis] != step:
                return None
            steps[axis] = step
            slight = False
    if not still and all(s is None for s in steps):
        return None
    return steps


def movement_credit(prediction, reference) -> float:
    """Mean over the axes either moves along of 1 (same step), 0.5 (same way, "slightly"
    differs) or 0."""
    credit, axes = 0.0, 0
    for p, r in zip(prediction, reference):
        if p is None and r is None:
            continue
        if p is not None and r is not None and p == r:
            credit += 1.0
        elif p is not None and r is not None and p[0] == r[0]:
            credit += 0.5
        axes += 1
    return 1.0 if axes == 0 else credit / axes


def score(
    response: str,
    truth: dict[str, Any],
    format_mode: str = "strict",
    position: str = "l1",
    format_weight: float = 1.0,
    answer_weight: float = 1.0,
) -> dict[str, float]:
    """r1's rewards of `response` for the decoded ground truth `truth`."""
    qa_type = truth.get("qa_type")
    if qa_type not in ("waypoint", "current_state", "movement", "waypoint_open"):
        raise ValueError(f"unknown qa_type {qa_type!r}")
    answer = truth.get("answer")
    if not isinstance(answer, dict) or len(answer) != 1:
        raise ValueError(f"answer must be one of {{label}}, {{position}}, {{movement}}, not {answer!r}")
    (kind, value), = answer.items()
    given = extract_answer(response)
    if kind == "label":
        if qa_type == "waypoint_open":
            raise ValueError(f"a {qa_type} question cannot have a label answer")
        options = truth.get("options")
        if not options:
            raise ValueError("a multiple-choice question needs options")
        check_options(options, value)
        accuracy = 1.0 if given is not None and named_options(given, options) == value else 0.0
    elif kind == "position":
        if qa_type != "waypoint_open":
            raise ValueError(f"a {qa_type} question cannot have a position answer")
        target = tuple(float(v) for v in value)
        if len(target) != 3 or not all(math.isfinite(v) for v in target):
            raise ValueError(f"target position {value!r} is not three finite numbers")
        predicted = parse_position(given) if given is not None else None
        accuracy = position_reward(predicted, target, position) if predicted is not None else 0.0
    elif kind == "movement":
        if qa_type != "movement":
            raise ValueError(f"a {qa_type} question cannot have a movement answer")
        reference = parse_movement(value)
        if reference is None:
            raise ValueError(f"reference movement {value!r} names no direction or contradicts itself")
        predicted = parse_movement(given) if given is not None else None
        accuracy = movement_credit(predicted, reference) if predicted is not None else 0.0
    else:
        raise ValueError(f"unknown answer kind {kind!r}")
    for name, weight in (("format", format_weight), ("answer", answer_weight)):
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"the weight of {name} must be a finite number >= 0, not {weight}")
    fmt = format_reward(response, format_mode)
    return {"overall": format_weight * fmt + answer_weight * accuracy, "format": fmt, "accuracy": accuracy}


def compute_score(reward_inputs: list[dict[str, Any]], **kwargs: Any) -> list[dict[str, float]]:
    """EasyR1's batch interface: one score dict per `{"response", "ground_truth", ...}`.
    Keyword arguments (from `reward_function_kwargs`) go to `score`: format_mode, position,
    format_weight, answer_weight."""
    return [score(item["response"], json.loads(item["ground_truth"]), **kwargs) for item in reward_inputs]

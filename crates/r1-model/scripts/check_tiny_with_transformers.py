#!/usr/bin/env python3
"""Loads a checkpoint directory written by r1-model (e.g. the tiny model `cargo xtask train`
creates in models/r1-tiny) in Hugging Face transformers and compares its outputs with r1's.

Usage:
  python crates/r1-model/scripts/check_tiny_with_transformers.py DIR [--image PNG] [--text TEXT]
      [--completion TEXT] [--xtask COMMAND] [--tol T]

It builds the prompt the way r1 does (one image, then the text, through the checkpoint's own
chat template with the generation prompt) and scores one reply twice: with r1 (`xtask score
--json`, run through COMMAND, by default `cargo xtask` in this repository) and with
transformers (one forward pass on the CPU in float32). Each side preprocesses the image and
tokenises the text itself. It prints whether the prompt and reply token ids agree, the logits'
statistics, and max and mean |r1 - transformers| of the reply's log-probabilities (natural log,
temperature 1; each is a logit minus the log-sum-exp of its whole row, so every logit of those
positions enters). It fails when the ids differ or the largest difference exceeds --tol.

The default image is a gradient of the size the checkpoint's processor works at, so that
neither side resamples it and the figures compare the model; an --image of another size is
resized by each side with its own filter, and that difference is part of the figures.

Needs torch, transformers and pillow (`pip install torch transformers pillow`); no network
access (everything is read from DIR).
"""

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from PIL import Image
from transformers import AutoProcessor, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

REPO = Path(__file__).resolve().parents[3]
TAGS = ["<think>", "</think>", "<answer>", "</answer>"]
DEFAULT_TEXT = (
    "Which option is the current position of the gripper? First think inside <think> </think>, "
    "then answer inside <answer> </answer>."
)
DEFAULT_COMPLETION = "<think>The gripper is at [0.254, -0.197, 0.894], above the cup.</think> <answer>[[B]]</answer>"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--image", type=Path, help="an RGB image (default: a gradient the processor keeps as it is)")
    parser.add_argument("--text", default=DEFAULT_TEXT)
    parser.add_argument("--completion", default=DEFAULT_COMPLETION, help="the reply both sides score")
    parser.add_argument("--xtask", default="cargo xtask", help="how to run r1's command line (default: %(default)s)")
    parser.add_argument("--tol", type=float, default=1e-4, help="largest |log-prob difference| accepted")
    args = parser.parse_args()

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(args.dir, dtype=torch.float32)
    model.eval()
    processor = AutoProcessor.from_pretrained(args.dir)
    tokenizer = AutoTokenizer.from_pretrained(args.dir)
    print(f"loaded {args.dir}: {sum(p.numel() for p in model.parameters())} parameters, "
          f"tokenizer {type(tokenizer).__name__} with {len(tokenizer)} tokens")

    for tag in TAGS:
        ids = tokenizer.encode(tag, add_special_tokens=False)
        if len(ids) != 1:
            sys.exit(f"{tag} is not a single token in transformers: {ids}")
    reply = tokenizer.encode("<think> a </think> <answer> [[B]] </answer><|im_end|>", add_special_tokens=False)
    decoded = tokenizer.decode(reply, skip_special_tokens=True)
    if decoded != "<think> a </think> <answer> [[B]] </answer>":
        sys.exit(f"the tags do not survive decoding without special tokens: {decoded!r}")

    with tempfile.TemporaryDirectory() as tmp:
        if args.image is None:
            # r1 reads the image from a file, so the default gradient is written to one.
            image_path = Path(tmp) / "gradient.png"
            gradient_image(processed_size(processor, (224, 224))).save(image_path)
        else:
            image_path = args.image
        image = Image.open(image_path).convert("RGB")
        r1 = r1_score(args.xtask, args.dir, image_path, args.text, args.completion)
    size = processed_size(processor, image.size)
    if size != image.size:
        print(f"image: resized from {image.size[0]}x{image.size[1]} to {size[0]}x{size[1]} by each side with its own "
              f"filter; the differences below include that")

    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": args.text}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[prompt], images=[image], return_tensors="pt")
    prompt_ids = inputs["input_ids"][0].tolist()
    completion_ids = tokenizer.encode(args.completion, add_special_tokens=False)
    print(f"prompt: {len(prompt_ids)} tokens, image grid (t, h, w) {inputs['image_grid_thw'].tolist()}; "
          f"reply: {len(completion_ids)} tokens")
    if prompt_ids != r1["prompt_tokens"]:
        sys.exit(f"prompt ids differ:\n r1           {r1['prompt_tokens']}\n transformers {prompt_ids}")
    if completion_ids != r1["completion_ids"]:
        sys.exit(f"reply ids differ:\n r1           {r1['completion_ids']}\n transformers {completion_ids}")
    print("token ids: identical in r1 and transformers (prompt and reply)")

    # The reply follows the prompt as plain text: its tokens extend every per-token input.
    n = len(completion_ids)
    extended = dict(inputs)
    extended["input_ids"] = torch.cat([inputs["input_ids"], torch.tensor([completion_ids])], dim=1)
    extended["attention_mask"] = torch.cat([inputs["attention_mask"], torch.ones(1, n, dtype=torch.long)], dim=1)
    if "mm_token_type_ids" in inputs:
        extended["mm_token_type_ids"] = torch.cat(
            [inputs["mm_token_type_ids"], torch.zeros(1, n, dtype=inputs["mm_token_type_ids"].dtype)], dim=1)
    with torch.no_grad():
        logits = model(**extended).logits.float()[0]
    print(f"logits {list(logits.shape)}: mean {logits.mean():.6f}, std {logits.std():.6f}, "
          f"min {logits.min():.6f}, max {logits.max():.6f}")
    if not torch.isfinite(logits).all():
        sys.exit("non-finite logits")

    # Position t predicts token t + 1: the reply's tokens are predicted from the last prompt
    # position on.
    start = len(prompt_ids) - 1
    logprobs = torch.log_softmax(logits[start:start + n], dim=-1)
    ours = logprobs.gather(1, torch.tensor(completion_ids).unsqueeze(1)).squeeze(1).double()
    diff = (torch.tensor(r1["completion_logprobs"], dtype=torch.float64) - ours).abs()
    print(f"reply log-probs, r1 vs transformers ({n} tokens): max |difference| {diff.max():.3e}, "
          f"mean |difference| {diff.mean():.3e} (transformers' values {ours.min():.4f} to {ours.max():.4f})")
    if diff.max() > args.tol:
        sys.exit(f"r1's log-probs differ from transformers' by {diff.max():.3e} > --tol {args.tol}")
    print(f"OK: within {args.tol}")


def r1_score(xtask, model_dir, image, text, completion):
    """r1's `score --json` for the reply, run from the repository root (where `cargo xtask`
    works), so every path is made absolute first."""
    command = shlex.split(xtask) + [
        "score", "--model", str(model_dir.resolve()), "--image", str(image.resolve()),
        "--prompt", text, "--completion", completion, "--json",
    ]
    out = subprocess.run(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        sys.exit(f"{shlex.join(command)} failed with exit status {out.returncode}")
    return json.loads(out.stdout)


def processed_size(processor, size):
    """The (width, height) the checkpoint's image processor resizes an image of `size` to."""
    image_processor = processor.image_processor
    grid = image_processor(images=[Image.new("RGB", size)], return_tensors="pt")["image_grid_thw"][0]
    return (int(grid[2]) * image_processor.patch_size, int(grid[1]) * image_processor.patch_size)


def gradient_image(size):
    """A deterministic RGB test image of `size` (width, height)."""
    width, height = size
    image = Image.new("RGB", size)
    image.putdata([(255 * x // width, 255 * y // height, 255 * (x + y) // (width + height))
                   for y in range(height) for x in range(width)])
    return image


if __name__ == "__main__":
    main()

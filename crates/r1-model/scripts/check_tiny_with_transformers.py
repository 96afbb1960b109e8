#!/usr/bin/env python3
"""Checks that a checkpoint directory written by r1-model (e.g. the `tiny` preset) loads in
Hugging Face transformers and runs: model, tokenizer, chat template and image processor.

Usage:
  python crates/r1-model/scripts/check_tiny_with_transformers.py DIR [--image PNG] [--rust LOGITS]

It builds the prompt the way r1 does (one image, then the text, through the checkpoint's own
chat template with the generation prompt), runs one forward pass on the CPU in float32 and
prints the logits' shape and statistics. With --rust, LOGITS is the safetensors file that
`cargo test --release -p r1-model --test tiny -- --ignored write_rust_logits` writes: r1-model's
`input_ids` [1, T], `pixel_values` [N, 1176] and `logits` [1, T, V] for one dataset prompt, whose
text and image path are in its metadata (they replace --text and --image). The script then
checks that transformers tokenises the prompt to the same ids, and prints max |difference| of
the pixel values, of the logits from transformers' own preprocessing, and of the logits from
r1's pixel values (the model alone); it fails when the last exceeds --tol.

Needs torch, transformers, safetensors and pillow (`pip install torch transformers safetensors
pillow`); no network access (everything is read from DIR).
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import AutoProcessor, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

TAGS = ["<think>", "</think>", "<answer>", "</answer>"]
DEFAULT_TEXT = (
    "Which option is the current position of the gripper? First think inside <think> </think>, "
    "then answer inside <answer> </answer>."
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--image", type=Path, help="an RGB image (default: a 224x224 gradient)")
    parser.add_argument("--text", default=DEFAULT_TEXT)
    parser.add_argument("--rust", type=Path, help="safetensors with input_ids and logits from r1-model")
    parser.add_argument("--tol", type=float, default=1e-3, help="largest |logit difference| accepted")
    args = parser.parse_args()

    rust = None
    if args.rust:
        rust = load_file(args.rust)
        with safe_open(args.rust, "pt") as f:
            meta = f.metadata()
        args.text, args.image = meta["text"], Path(meta["image"])
    image = Image.open(args.image).convert("RGB") if args.image else gradient_image()
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(args.dir, torch_dtype=torch.float32)
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

    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": args.text}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[prompt], images=[image], return_tensors="pt")
    print(f"prompt: {inputs['input_ids'].shape[1]} tokens, image grid (t, h, w) {inputs['image_grid_thw'].tolist()}")
    with torch.no_grad():
        logits = model(**inputs).logits.float()
    print(f"logits {list(logits.shape)}: mean {logits.mean():.6f}, std {logits.std():.6f}, "
          f"min {logits.min():.6f}, max {logits.max():.6f}, finite {bool(torch.isfinite(logits).all())}")
    if not torch.isfinite(logits).all():
        sys.exit("non-finite logits")

    if rust is not None:
        if not torch.equal(rust["input_ids"].long(), inputs["input_ids"].long()):
            sys.exit(f"prompt ids differ:\n rust         {rust['input_ids'].tolist()}\n transformers {inputs['input_ids'].tolist()}")
        pixel_diff = (rust["pixel_values"] - inputs["pixel_values"].float()).abs().max().item()
        with torch.no_grad():
            same_pixels = dict(inputs, pixel_values=rust["pixel_values"])
            model_logits = model(**same_pixels).logits.float()
        report = {
            "same_input_ids": True,
            "max_abs_pixel_diff": pixel_diff,
            "max_abs_logit_diff": (rust["logits"] - logits).abs().max().item(),
            "max_abs_logit_diff_same_pixels": (rust["logits"] - model_logits).abs().max().item(),
            "logit_std": logits.std().item(),
        }
        print(json.dumps(report))
        if report["max_abs_logit_diff_same_pixels"] > args.tol:
            sys.exit(f"the model's logits differ by {report['max_abs_logit_diff_same_pixels']} > {args.tol}")

def gradient_image():
    """A deterministic 224x224 RGB test image."""
    image = Image.new("RGB", (224, 224))
    image.putdata([(x, y, (x + y) // 2) for y in range(224) for x in range(224)])
    return image


if __name__ == "__main__":
    main()

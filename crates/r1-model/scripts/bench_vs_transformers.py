#!/usr/bin/env python3
"""Generation throughput of r1 (burn) against transformers on the same checkpoint and prompts.

Runs `cargo xtask bench --only generation --json` for r1's figures, then measures the same
figures with transformers' Qwen2_5_VLForConditionalGeneration (CPU, float32, one thread per
core) and prints one Markdown table: figure | r1 | transformers | r1/transformers.

The figures are defined the same way on both sides (see xtask/src/bench.rs):
  - prefill tokens/s: prompt tokens (padding excluded) / time of a 1-token generation;
  - decode tokens/s: B * (N - 1) / (time of an N-token generation - time of a 1-token one),
    greedy, stop tokens ignored (transformers: min_new_tokens = N), with and without the KV
    cache (transformers: use_cache=True/False);
each the median over --repeats runs, each run on the next prompts of the training split.

Usage (from the repository root):
  python crates/r1-model/scripts/bench_vs_transformers.py [--model models/r1-tiny]
      [--data datasets/default] [--repeats 3] [--new-tokens 32]
Needs torch (CPU build), transformers and Pillow from PyPI. The machine is shared, so the
absolute numbers are noisy; the ratios are measured in the same run.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

FIGURES = [
    ("prefill_b1", "prefill, batch 1"),
    ("prefill_b16", "prefill, batch 16"),
    ("decode_cache_b1", "decode with KV cache, batch 1"),
    ("decode_cache_b16", "decode with KV cache, batch 16"),
    ("decode_nocache_b1", "decode without cache, batch 1"),
    ("decode_nocache_b16", "decode without cache, batch 16"),
]


def r1_figures(args):
    """r1's rows as {key: tokens/s}, from the xtask bench's JSON output."""
    cmd = [
        "cargo", "xtask", "bench", "--only", "generation", "--json",
        "--model", str(args.model), "--data", str(args.data),
        "--repeats", str(args.repeats), "--new-tokens", str(args.new_tokens),
    ]
    print("running:", " ".join(cmd), file=sys.stderr)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return {row["key"]: row["value"] for row in json.loads(out)}


def prompt_messages(sample, root):
    """The sample's turns before the first assistant turn, images opened from `root`."""
    messages = []
    for message in sample["messages"]:
        if message["role"] == "assistant":
            break
        content = []
        for part in message["content"]:
            if part["type"] == "image":
                content.append({"type": "image", "image": Image.open(root / part["image"]).convert("RGB")})
            else:
                content.append(part)
        messages.append({"role": message["role"], "content": content})
    return messages


class Prompts:
    """The training prompts in order, as padded model inputs, a new set at every call."""

    def __init__(self, processor, data):
        self.processor = processor
        self.root = Path(data)
        with open(self.root / "qa" / "train.jsonl") as f:
            self.samples = [json.loads(line) for line in f if line.strip()]
        self.next = 0

    def take(self, n):
        batch = []
        for _ in range(n):
            batch.append(prompt_messages(self.samples[self.next % len(self.samples)], self.root))
            self.next += 1
        return self.processor.apply_chat_template(
            batch, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt", padding=True
        )


def loadable_copy(model_dir, tmp):
    """`model_dir` as transformers 5 accepts it, in `tmp`: links to its files, with integral
    floats made ints in config.json where transformers insists on an int (r1 writes
    vision_config.tokens_per_second as 2.0)."""
    model_dir = Path(model_dir).resolve()
    for path in model_dir.iterdir():
        if path.name != "config.json":
            os.symlink(path, Path(tmp) / path.name)
    with open(model_dir / "config.json") as f:
        config = json.load(f)
    vision = config.get("vision_config", {})
    value = vision.get("tokens_per_second")
    if isinstance(value, float) and value.is_integer():
        vision["tokens_per_second"] = int(value)
    with open(Path(tmp) / "config.json", "w") as f:
        json.dump(config, f)
    return tmp


def transformers_figures(args):
    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        loadable_copy(args.model, tmp)
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tmp, dtype=torch.float32).eval()
        processor = AutoProcessor.from_pretrained(tmp)
    # Decoder-only batches are padded on the left, as r1 does.
    processor.tokenizer.padding_side = "left"
    pad = processor.tokenizer.pad_token_id
    prompts = Prompts(processor, args.data)
    n = args.new_tokens

    def run(inputs, tokens, use_cache):
        start = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                **inputs,
                max_new_tokens=tokens,
                min_new_tokens=tokens,
                do_sample=False,
                use_cache=use_cache,
                pad_token_id=pad,
            )
        seconds = time.perf_counter() - start
        assert out.shape[1] == inputs["input_ids"].shape[1] + tokens, "generation stopped early"
        return seconds

    run(prompts.take(1), 2, True)  # warm-up, outside every figure
    figures = {}
    for batch in (1, 16):
        prefill, cached, uncached = [], [], []
        for _ in range(args.repeats):
            inputs = prompts.take(batch)
            tokens = int(inputs["attention_mask"].sum())
            one = run(inputs, 1, True)
            every = run(inputs, n, True)
            prefill.append(tokens / one)
            cached.append(batch * (n - 1) / max(every - one, 1e-9))
            inputs = prompts.take(batch)
            one = run(inputs, 1, False)
            every = run(inputs, n, False)
            uncached.append(batch * (n - 1) / max(every - one, 1e-9))
        figures[f"prefill_b{batch}"] = statistics.median_high(prefill)
        figures[f"decode_cache_b{batch}"] = statistics.median_high(cached)
        figures[f"decode_nocache_b{batch}"] = statistics.median_high(uncached)
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/r1-tiny"))
    parser.add_argument("--data", type=Path, default=Path("datasets/default"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=32)
    args = parser.parse_args()
    if args.repeats < 1 or args.new_tokens < 2:
        parser.error("--repeats must be at least 1 and --new-tokens at least 2")

    # r1 first: it creates the tiny model when the default one is absent.
    ours = r1_figures(args)
    theirs = transformers_figures(args)
    print(f"{os.cpu_count()} CPU threads, float32, greedy, {args.new_tokens} new tokens, median of {args.repeats}")
    print("| figure (tokens/s) | r1 | transformers | r1/transformers |")
    print("|---|---|---|---|")
    for key, name in FIGURES:
        print(f"| {name} | {ours[key]:.1f} | {theirs[key]:.1f} | {ours[key] / theirs[key]:.2f} |")


if __name__ == "__main__":
    main()

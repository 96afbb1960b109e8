#!/usr/bin/env python3
"""Generation throughput of r1 (burn) against transformers on the same checkpoint and prompts.

Runs `cargo xtask bench --only generation --json` for r1's figures, then measures the same
figures with transformers' Qwen2_5_VLForConditionalGeneration and prints one Markdown table:
figure | r1 | transformers | r1/transformers. By default both run on the CPU in float32
(transformers with one thread per core); on a GPU machine --device cuda --dtype bfloat16 runs
transformers there and r1 on --r1-device (wgpu) with `model.dtype` to match.

The figures are defined the same way on both sides (see xtask/src/bench.rs):
  - prefill tokens/s: prompt tokens / time of a 1-token generation, on the same 16 prompts
    batched (left-padded: padding is not counted as tokens) and one prompt at a time;
  - decode tokens/s: B * (N - 1) / the time an N-token generation takes from its first new
    token (the prefill done) to its end (transformers: a streamer notes the first token),
    greedy, stop tokens ignored (transformers: min_new_tokens = N), with and without the KV
    cache (transformers: use_cache=True/False);
each the median over --repeats runs, each run on the next prompts of the training split.

Usage (from the repository root):
  python crates/r1-model/scripts/bench_vs_transformers.py [--model models/r1-tiny]
      [--data datasets/default] [--repeats 3] [--new-tokens 32] [--device cpu|cuda]
      [--dtype float32|bfloat16] [--xtask "cargo xtask"] [--r1-device flex|wgpu|cuda]
Needs torch, transformers and Pillow from PyPI. The machine is shared, so the absolute numbers
are noisy; the ratios are measured in the same run.
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


R1_DTYPE = {"float32": "f32", "bfloat16": "bf16"}


def r1_figures(args):
    """r1's rows as {key: tokens/s}, from the xtask bench's JSON output, in --dtype."""
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as config:
        config.write(f'preset = "tiny"\n[model]\ndtype = "{R1_DTYPE[args.dtype]}"\n')
        config.flush()
        cmd = args.xtask.split() + [
            "bench", "--only", "generation", "--json",
            "--model", str(args.model), "--data", str(args.data), "--config", config.name,
            "--device", args.r1_device,
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

    def __init__(self, processor, data, device):
        self.processor = processor
        self.device = device
        self.root = Path(data)
        with open(self.root / "qa" / "train.jsonl") as f:
            self.samples = [json.loads(line) for line in f if line.strip()]
        self.next = 0

    def take_messages(self, n):
        batch = []
        for _ in range(n):
            batch.append(prompt_messages(self.samples[self.next % len(self.samples)], self.root))
            self.next += 1
        return batch

    def encode(self, batch):
        return self.processor.apply_chat_template(
            batch, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt", padding=True
        ).to(self.device)

    def take(self, n):
        return self.encode(self.take_messages(n))


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
    dtype = getattr(torch, args.dtype)
    with tempfile.TemporaryDirectory() as tmp:
        loadable_copy(args.model, tmp)
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tmp, dtype=dtype).to(args.device).eval()
        processor = AutoProcessor.from_pretrained(tmp)
    # Decoder-only batches are padded on the left, as r1 does.
    processor.tokenizer.padding_side = "left"
    pad = processor.tokenizer.pad_token_id
    prompts = Prompts(processor, args.data, args.device)
    n = args.new_tokens

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    class FirstToken:
        """A `generate` streamer: `put` gets the prompt, then each step's new tokens."""

        def __init__(self):
            self.calls, self.first = 0, None

        def put(self, _value):
            self.calls += 1
            if self.calls == 2:
                sync()
                self.first = time.perf_counter()

        def end(self):
            pass

    def run(inputs, tokens, use_cache):
        """(seconds in all, seconds from the first new token to the end)."""
        streamer = FirstToken()
        sync()
        start = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                **inputs,
                max_new_tokens=tokens,
                min_new_tokens=tokens,
                do_sample=False,
                use_cache=use_cache,
                pad_token_id=pad,
                streamer=streamer,
            )
        sync()
        end = time.perf_counter()
        assert out.shape[1] == inputs["input_ids"].shape[1] + tokens, "generation stopped early"
        return end - start, end - streamer.first

    run(prompts.take(1), 2, True)  # warm-up, outside every figure
    figures = {}
    batched, alone = [], []
    for _ in range(args.repeats):
        messages = prompts.take_messages(16)
        inputs = prompts.encode(messages)
        tokens = int(inputs["attention_mask"].sum())
        batched.append(tokens / run(inputs, 1, True)[0])
        alone.append(tokens / sum(run(prompts.encode([m]), 1, True)[0] for m in messages))
    figures["prefill_b1"] = statistics.median_high(alone)
    figures["prefill_b16"] = statistics.median_high(batched)
    for batch in (1, 16):
        cached, uncached = [], []
        for _ in range(args.repeats):
            cached.append(batch * (n - 1) / max(run(prompts.take(batch), n, True)[1], 1e-9))
            uncached.append(batch * (n - 1) / max(run(prompts.take(batch), n, False)[1], 1e-9))
        figures[f"decode_cache_b{batch}"] = statistics.median_high(cached)
        figures[f"decode_nocache_b{batch}"] = statistics.median_high(uncached)
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/r1-tiny"))
    parser.add_argument("--data", type=Path, default=Path("datasets/default"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="transformers' device: cpu or cuda")
    parser.add_argument("--dtype", choices=sorted(R1_DTYPE), default="float32", help="both sides' compute dtype")
    parser.add_argument("--xtask", default="cargo xtask", help="how to run r1's command line (a built binary on a machine without cargo)")
    parser.add_argument("--r1-device", default="flex", help="r1's device: flex, wgpu or cuda")
    args = parser.parse_args()
    if args.repeats < 1 or args.new_tokens < 2:
        parser.error("--repeats must be at least 1 and --new-tokens at least 2")

    # r1 first: it creates the tiny model when the default one is absent.
    ours = r1_figures(args)
    theirs = transformers_figures(args)
    print(
        f"transformers on {args.device} ({os.cpu_count()} CPU threads), r1 on {args.r1_device}, {args.dtype}, greedy, "
        f"{args.new_tokens} new tokens, median of {args.repeats}"
    )
    print("| figure (tokens/s) | r1 | transformers | r1/transformers |")
    print("|---|---|---|---|")
    for key, name in FIGURES:
        print(f"| {name} | {ours[key]:.1f} | {theirs[key]:.1f} | {ours[key] / theirs[key]:.2f} |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Peak host memory of one training micro-batch against the vocabulary size. Prints a Markdown
table: vocabulary | model loaded (MiB) | peak (MiB) | peak - loaded (MiB).

The log-softmax over the vocabulary is formed a few positions at a time, but under autodiff
every chunk's logits stay alive until the backward pass, so training memory grows with
micro_batch x max_response_tokens x vocabulary. This measures by how much, on the tiny model:
for each size it copies the model folder (default models/r1-tiny, which `cargo xtask train`
creates) with the (tied) embedding padded to that many rows (new rows drawn like the
initialisation, N(0, 0.02)), and runs the peak-memory child of `cargo xtask bench`
(`--peak-memory-child`: the model loaded, then one micro-batch of the tiny preset, its
completions at the length limit, through the teacher-forced forward, the GRPO loss and the
backward, in a fresh process; VmHWM). 151,936 is the released Qwen2.5-VL checkpoints'
vocabulary.

Usage (after `cargo build --release --workspace --bins`, from the repository root):
  python3 crates/r1-grpo/scripts/bench_vocab_memory.py [--sizes 750,16384,65536,151936]
Needs numpy and safetensors.
"""

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

EMBEDDING = "model.embed_tokens.weight"


def widened(src: Path, dst: Path, vocab: int) -> None:
    shutil.copytree(src, dst)
    config = json.loads((src / "config.json").read_text())
    if config.get("tie_word_embeddings") is not True:
        raise SystemExit(f"{src}: expected tied embeddings (the tiny model's); an lm_head would need padding too")
    tensors = load_file(src / "model.safetensors")
    embedding = tensors[EMBEDDING]
    if vocab < embedding.shape[0]:
        raise SystemExit(f"--sizes: {vocab} is below the model's own vocabulary ({embedding.shape[0]})")
    extra = np.random.default_rng(0).normal(0.0, 0.02, (vocab - embedding.shape[0], embedding.shape[1]))
    tensors[EMBEDDING] = np.concatenate([embedding, extra.astype(embedding.dtype)])
    save_file(tensors, dst / "model.safetensors", metadata={"format": "pt"})
    config["vocab_size"] = vocab
    (dst / "config.json").write_text(json.dumps(config, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/r1-tiny"))
    parser.add_argument("--data", type=Path, default=Path("datasets/default"))
    parser.add_argument("--xtask", type=Path, default=Path("target/release/xtask"))
    parser.add_argument("--sizes", default="750,16384,65536,151936", help="vocabulary sizes, comma-separated")
    args = parser.parse_args()
    for path in (args.model / "config.json", args.xtask):
        if not path.is_file():
            raise SystemExit(f"{path}: not found (run `cargo xtask train` once and build the workspace)")
    print("| vocabulary | model loaded (MiB) | peak (MiB) | peak - loaded (MiB) |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for vocab in (int(s) for s in args.sizes.split(",")):
            model = Path(tmp) / f"vocab-{vocab}"
            widened(args.model, model, vocab)
            out = subprocess.run(
                [str(args.xtask), "bench", "--peak-memory-child", "--model", str(model), "--data", str(args.data)],
                capture_output=True,
                text=True,
            )
            if out.returncode != 0:
                raise SystemExit(f"vocabulary {vocab}: {out.stderr.strip()}")
            m = json.loads(out.stdout.strip().splitlines()[-1])
            before, peak = m["before_kib"] / 1024, m["peak_kib"] / 1024
            print(f"| {vocab:,} | {before:.0f} | {peak:.0f} | {peak - before:.0f} |", flush=True)
            shutil.rmtree(model)


if __name__ == "__main__":
    main()

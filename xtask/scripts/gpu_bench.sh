#!/usr/bin/env bash
# The GPU figures of the scale issue in one run: r1 through wgpu (Vulkan) and transformers on
# CUDA, on a Qwen2.5-VL-3B-shaped random model (the released widths and vocabulary at reduced
# depth; `cargo xtask random-model`), for a machine with one NVIDIA GPU, Python with torch and
# transformers, and neither cargo nor network (the device machine this workplace lends).
#
#   bash xtask/scripts/gpu_bench.sh prepare   # here: build r1, pack it into .gpu/, fetch the
#                                             # Vulkan loader into .gl/ (both git-ignored)
#   bash xtask/scripts/gpu_bench.sh run       # there (carry .gpu and .gl): figures into $OUT
#
# `run` writes, under $OUT (default /tmp/gpu-bench):
#   train_{f32,bf16,lora}.json  `cargo xtask bench --only training --json` on the GPU: GRPO
#                               step time and phases, generation and training tokens/s, MFU
#                               (against the GPU matmul the bench measures), host peak memory;
#   train_*.gpumem              the GPU's memory in use (MiB), sampled every 200 ms meanwhile;
#   generation.md               r1 against transformers' generate, bf16, same prompts
#                               (crates/r1-model/scripts/bench_vs_transformers.py);
#   report.md                   the three training runs side by side with their GPU peaks.
# Knobs (environment): SHAPE (qwen2.5-vl-3b), LAYERS (4), VISION_LAYERS (the shape's 32),
# REPEATS (3), R1_DEVICE (wgpu), TORCH_DEVICE (cuda), PYTHON (python3). SHAPE=tiny
# R1_DEVICE=flex TORCH_DEVICE=cpu REPEATS=1 PYTHON=.venv/bin/python runs the same steps on a
# CPU, as a check of the script.
set -euo pipefail
cd "$(dirname "$0")/../.."

exclude() { grep -qx "/$1/" .git/info/exclude 2>/dev/null || echo "/$1/" >> .git/info/exclude; }

case "${1:-}" in
prepare)
    cargo build --release --workspace --bins
    exclude .gpu
    mkdir -p .gpu
    strip -o .gpu/xtask target/release/xtask
    xz -T0 -f .gpu/xtask
    # The Vulkan loader, as the device machine's notes say to bring it (drivers are there).
    exclude .gl
    mkdir -p .gl /tmp/amd64/partial
    apt=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
    apt-get "${apt[@]}" update -qq
    (cd .gl && apt-get "${apt[@]}" download libvulkan1)
    du -sh .gpu .gl
    ;;
run)
    out=${OUT:-/tmp/gpu-bench}
    shape=${SHAPE:-qwen2.5-vl-3b}
    layers=${LAYERS:-4}
    repeats=${REPEATS:-3}
    r1_device=${R1_DEVICE:-wgpu}
    torch_device=${TORCH_DEVICE:-cuda}
    python=${PYTHON:-python3}
    mkdir -p "$out"
    if compgen -G ".gl/*.deb" > /dev/null; then
        for f in .gl/*.deb; do dpkg -x "$f" /; done
        ldconfig
    fi
    nvidia_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    [ -f "$nvidia_icd" ] && export VK_DRIVER_FILES=${VK_DRIVER_FILES:-$nvidia_icd}
    export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
    if [ -f .gpu/xtask.xz ]; then
        xz -dkf .gpu/xtask.xz
        chmod +x .gpu/xtask
        x=$PWD/.gpu/xtask
    else
        x=$PWD/target/release/xtask
    fi
    model=/tmp/r1-$shape-l$layers
    [ -d "$model" ] || "$x" random-model --shape "$shape" --layers "$layers" \
        ${VISION_LAYERS:+--vision-layers "$VISION_LAYERS"} --out "$model"

    configs=/tmp/r1-gpu-configs
    mkdir -p "$configs"
    printf 'preset = "tiny"\n[model]\ndtype = "f32"\n' > "$configs/f32.toml"
    printf 'preset = "tiny"\n[model]\ndtype = "bf16"\n' > "$configs/bf16.toml"
    printf 'preset = "tiny"\n[model]\ndtype = "bf16"\n[lora]\nr = 16\nalpha = 32.0\n' > "$configs/lora.toml"
    for run in f32 bf16 lora; do
        sampler=
        if command -v nvidia-smi > /dev/null; then
            nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$out/train_$run.gpumem" &
            sampler=$!
        fi
        "$x" bench --only training --json --device "$r1_device" --model "$model" \
            --config "$configs/$run.toml" --repeats "$repeats" > "$out/train_$run.json" \
            || echo "training bench $run failed" | tee -a "$out/errors.txt"
        [ -n "$sampler" ] && kill "$sampler"
    done
    "$python" crates/r1-model/scripts/bench_vs_transformers.py --model "$model" --device "$torch_device" \
        --dtype bfloat16 --xtask "$x" --r1-device "$r1_device" --repeats "$repeats" > "$out/generation.md" \
        || echo "generation comparison failed" | tee -a "$out/errors.txt"
    "$python" - "$out" > "$out/report.md" <<'EOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
runs = ["f32", "bf16", "lora"]
rows, peaks = {}, {}
for run in runs:
    path = out / f"train_{run}.json"
    if path.exists() and path.stat().st_size:
        for row in json.loads(path.read_text()):
            rows.setdefault(row["figure"], {})[run] = f'{row["value"]:.4g} {row["unit"]}'
    mem = out / f"train_{run}.gpumem"
    values = [int(v) for v in mem.read_text().split()] if mem.exists() else []
    peaks[run] = f"{max(values)} MiB" if values else "n/a"
print("| figure | f32 | bf16 | bf16 + LoRA r16 |")
print("|---|---|---|---|")
for figure, by_run in rows.items():
    print(f"| {figure} | " + " | ".join(by_run.get(r, "") for r in runs) + " |")
print("| GPU memory in use, peak | " + " | ".join(peaks[r] for r in runs) + " |")
EOF
    cat "$out/report.md" "$out/generation.md"
    ;;
*)
    echo "usage: bash xtask/scripts/gpu_bench.sh prepare|run" >&2
    exit 2
    ;;
esac

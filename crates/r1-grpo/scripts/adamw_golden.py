#!/usr/bin/env python3
"""Golden values for r1-grpo's AdamW (`src/optim.rs`), computed by PyTorch itself.

Runs `torch.optim.AdamW` for a few steps on three small float64 parameters: `layer.weight`
(2-D) and `layer.bias` (1-D) are trained; `frozen.weight` has gradients too but is left out of
the optimiser and of the clip, as r1 does for a frozen module path. Each step's gradients are
fixed seeded arrays (large on some steps so that `torch.nn.utils.clip_grad_norm_` scales them,
small on others so that it does not), and each step's learning rate comes from
transformers' `get_cosine_schedule_with_warmup`, with r1's `ceil(warmup_ratio * total)` warm-up.
Weight decay is on and the betas and epsilon are far enough from the defaults that mixing them
up, or moving epsilon inside the bias correction, changes the result well beyond the tolerance.

Initial values and gradients are drawn in float32 so that the Rust test, which trains in
float32, starts from exactly the same numbers; the reference itself runs in float64.

Records, as JSON: the hyper-parameters, the initial parameters, and per step the gradients, the
learning rate, the gradient norm before clipping and every parameter after the step.

Usage: .venv/bin/python crates/r1-grpo/scripts/adamw_golden.py > crates/r1-grpo/tests/fixtures/adamw_golden.json
"""

import json
import math

import numpy as np
import torch
from transformers import get_cosine_schedule_with_warmup

STEPS = 6
PEAK_LR = 0.1
WARMUP_RATIO = 0.3
BETAS = (0.8, 0.95)
EPS = 1e-3
WEIGHT_DECAY = 0.1
MAX_GRAD_NORM = 1.0
SHAPES = {"layer.weight": (2, 3), "layer.bias": (3,), "frozen.weight": (2, 2)}
FROZEN = "frozen.weight"
# Scale of each step's gradients: with nine trainable entries the norm is about three times the
# scale, so steps 0, 2 and 5 are clipped and the others are not.
GRAD_SCALES = [3.0, 0.05, 10.0, 0.2, 0.002, 4.0]


def f32_values(rng, shape, scale):
    return (rng.standard_normal(shape) * scale).astype(np.float32).astype(np.float64)


def main():
    rng = np.random.default_rng(20250701)
    # Magnitudes in [0.5, 1.5] keep every parameter well away from zero over the run, so a
    # purely relative comparison is meaningful.
    initial = {
        name: (rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 1.5, shape)).astype(np.float32).astype(np.float64)
        for name, shape in SHAPES.items()
    }
    params = {name: torch.tensor(v, requires_grad=True) for name, v in initial.items()}
    trainable = [p for name, p in params.items() if name != FROZEN]

    optimiser = torch.optim.AdamW(trainable, lr=PEAK_LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY)
    warmup = math.ceil(WARMUP_RATIO * STEPS)
    schedule = get_cosine_schedule_with_warmup(optimiser, num_warmup_steps=warmup, num_training_steps=STEPS)

    steps = []
    for scale in GRAD_SCALES:
        # The frozen parameter's gradients are large: were they counted, every norm would change.
        grads = {name: f32_values(rng, shape, 10.0 if name == FROZEN else scale) for name, shape in SHAPES.items()}
        for name, p in params.items():
            p.grad = torch.tensor(grads[name])
        lr = optimiser.param_groups[0]["lr"]
        grad_norm = torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM).item()
        optimiser.step()
        schedule.step()
        steps.append({
            "lr": lr,
            "grad_norm": grad_norm,
            "grads": {name: g.tolist() for name, g in grads.items()},
            "params": {name: p.detach().numpy().tolist() for name, p in params.items()},
        })

    norms = [s["grad_norm"] for s in steps]
    assert any(n > MAX_GRAD_NORM for n in norms) and any(n < MAX_GRAD_NORM for n in norms), norms
    print(json.dumps({
        "total_steps": STEPS,
        "peak_lr": PEAK_LR,
        "warmup_ratio": WARMUP_RATIO,
        "beta1": BETAS[0],
        "beta2": BETAS[1],
        "eps": EPS,
        "weight_decay": WEIGHT_DECAY,
        "max_grad_norm": MAX_GRAD_NORM,
        "frozen_prefix": FROZEN.split(".")[0],
        "initial": {name: v.tolist() for name, v in initial.items()},
        "steps": steps,
    }, indent=1))


if __name__ == "__main__":
    main()

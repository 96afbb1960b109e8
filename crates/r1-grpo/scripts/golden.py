#!/usr/bin/env python3
"""Golden values for r1-grpo's advantages and losses, computed independently of the Rust code.

The formulas follow the peers' implementations as written in verl's `core_algos.py`
(compute_grpo_outcome_advantage, compute_rloo_outcome_advantage, compute_policy_loss with dual
clip, kl_penalty with low_var_kl clamped to [-10, 10], agg_loss) and TRL's GRPOTrainer
(scale_rewards "batch"/"none", clip-ratio metrics). PyTorch was not installed on the machine that
generated the committed fixture, so the same operations are written with numpy in float64.

Usage: python3 crates/r1-grpo/scripts/golden.py > crates/r1-grpo/tests/fixtures/golden.json
"""

import json

import numpy as np

EPS = 1e-6


def grpo_advantages(rewards, group, scale):
    r = rewards.reshape(-1, group)
    mean = r.mean(axis=1, keepdims=True)
    if scale == "group":
        std = r.std(axis=1, ddof=1, keepdims=True)
        adv = (r - mean) / (std + EPS)
    elif scale == "batch":
        adv = (r - mean) / (rewards.std(ddof=1) + EPS)
    else:
        adv = r - mean
    return adv.reshape(-1)


def rloo_advantages(rewards, group):
    r = rewards.reshape(-1, group)
    others = (r.sum(axis=1, keepdims=True) - r) / (group - 1)
    return (r - others).reshape(-1)


def policy_loss(logp, old_logp, adv, clip_low, clip_high, dual):
    a = adv[:, None]
    log_ratio = np.clip(logp - old_logp, -20.0, 20.0)
    ratio = np.exp(log_ratio)
    pg1 = -a * ratio
    pg2 = -a * np.clip(ratio, 1 - clip_low, 1 + clip_high)
    clip1 = np.maximum(pg1, pg2)
    if dual is None:
        loss = clip1
    else:
        pg3 = -a * dual
        loss = np.where(a < 0, np.minimum(pg3, clip1), clip1)
    low = (ratio < 1 - clip_low) & (a < 0)
    high = (ratio > 1 + clip_high) & (a > 0)
    return loss, low, high


def kl(logp, ref_logp, kind, clamp):
    if kind == "k1":
        v = logp - ref_logp
    elif kind == "k2":
        v = 0.5 * (logp - ref_logp) ** 2
    else:
        d = ref_logp - logp
        v = np.exp(d) - d - 1
    return np.clip(v, -clamp, clamp) if clamp is not None else v


def agg(values, mask, mode, max_len):
    if mode == "token-mean":
        return float((values * mask).sum() / mask.sum())
    if mode == "seq-mean-token-mean":
        per_seq = (values * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1)
        return float(per_seq.mean())
    return float((values * mask).sum() / (mask.shape[0] * max_len))


def main():
    rng = np.random.default_rng(20250600)
    b, t, group, max_len = 6, 7, 3, 10
    lengths = np.array([7, 5, 3, 6, 1, 4])
    mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.float64)
    logp = -rng.uniform(0.05, 4.0, size=(b, t))
    old_logp = logp + rng.normal(0.0, 0.3, size=(b, t))
    # Far-off tokens exercise the log-ratio clamp and the KL clamp.
    old_logp[0, 1] = logp[0, 1] - 25.0
    old_logp[3, 2] = logp[3, 2] + 25.0
    ref_logp = logp + rng.normal(0.0, 0.5, size=(b, t))
    ref_logp[1, 0] = logp[1, 0] + 6.0
    rewards = np.array([1.0, 0.0, 0.5, 1.0, 1.0, 1.0, 0.25, 2.0, 0.0, 0.0, 1.5, 0.5, 0.2, 0.2, 0.7])
    adv = np.array([1.3, -0.7, 0.0, -2.1, 0.9, -0.4])

    out = {
        "b": b, "t": t, "max_len": max_len,
        "mask": mask.tolist(), "logp": logp.tolist(), "old_logp": old_logp.tolist(),
        "ref_logp": ref_logp.tolist(), "advantages": adv.tolist(),
        "rewards": rewards.tolist(), "group": group,
        "adv_grpo": grpo_advantages(rewards, group, "group").tolist(),
        "adv_batch_std": grpo_advantages(rewards, group, "batch").tolist(),
        "adv_no_std": grpo_advantages(rewards, group, "none").tolist(),
        "adv_rloo": rloo_advantages(rewards, group).tolist(),
        "cases": [],
    }
    for clip_low, clip_high, dual in [(0.2, 0.3, 3.0), (0.2, 0.2, None)]:
        loss, low, high = policy_loss(logp, old_logp, adv, clip_low, clip_high, dual)
        case = {
            "clip_low": clip_low, "clip_high": clip_high, "dual_clip": dual,
            "policy_loss": loss.tolist(),
            "clipped_low_count": float((low * mask).sum()),
            "clipped_high_count": float((high * mask).sum()),
            "kl": {},
            "total": {},
        }
        for kind in ["k1", "k2", "k3"]:
            for clamp in [10.0, None]:
                case["kl"][f"{kind}/{clamp}"] = kl(logp, ref_logp, kind, clamp).tolist()
        total = loss + 0.01 * kl(logp, ref_logp, "k3", 10.0)
        for mode in ["token-mean", "seq-mean-token-mean", "dr-grpo"]:
            case["total"][mode] = agg(total, mask, mode, max_len)
        out["cases"].append(case)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

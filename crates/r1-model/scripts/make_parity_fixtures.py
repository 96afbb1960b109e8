#!/usr/bin/env python3
"""Builds the parity fixtures of r1-model from transformers' Qwen2.5-VL (CPU, float32, eager).

Each case is a tiny random Qwen2.5-VL saved as a Hugging Face checkpoint directory under
crates/r1-model/tests/fixtures/<case>/, with:
  - config.json + weights (single file or sharded; f32 or bf16; original keys with the original
    flat config, or nested `model.language_model.*` / `model.visual.*` keys with the
    transformers-5 config)
  - inputs.safetensors: pixel_values [N, C*T*P*P] f32, grid_thw [I, 3], input_ids [B, T],
    attention_mask [B, T] (int64)
  - reference.safetensors: patch_embeds [N, Hv], blocks_out [N, Hv] (window order),
    merged [N/4, H] (window order), features [N/4, H] (processor order),
    position_ids [3, B, T], next_position [B] (position of the first generated token),
    logits [B, T, V]; cases with `bf16_reference` also logits_bf16 [B, T, V]: the same
    forward with the model and pixels cast to bfloat16 (transformers' bf16 inference), stored
    as f32 (SDPA attention), and logits_bf16_eager (eager attention)
  - generate.json (case "gqa1_tied" only): transformers' greedy `generate` tokens.

Usage: python crates/r1-model/scripts/make_parity_fixtures.py  (needs torch, transformers,
safetensors from PyPI; reruns give identical files for a given transformers version).
"""

import copy
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures"

VOCAB = 320
IMAGE, VIDEO, V_START, V_END, EOS = 300, 301, 302, 303, 304


def make_config(text, vision, tie):
    return Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=VOCAB,
            hidden_size=text["hidden"],
            intermediate_size=text["inter"],
            num_hidden_layers=2,
            num_attention_heads=text["heads"],
            num_key_value_heads=text["kv"],
            rms_norm_eps=1e-6,
            max_position_embeddings=4096,
            rope_parameters={"rope_type": "default", "mrope_section": text["section"], "rope_theta": 10000.0},
            bos_token_id=None,
            eos_token_id=EOS,
        ),
        vision_config=dict(
            depth=vision["depth"],
            hidden_size=vision["hidden"],
            intermediate_size=vision["inter"],
            num_heads=vision["heads"],
            in_channels=3,
            patch_size=vision["patch"],
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=vision["window"],
            out_hidden_size=text["hidden"],
            fullatt_block_indexes=vision["fullatt"],
            tokens_per_second=2,
        ),
        image_token_id=IMAGE,
        video_token_id=VIDEO,
        vision_start_token_id=V_START,
        vision_end_token_id=V_END,
        tie_word_embeddings=tie,
    )


def randomize(model, seed):
    """transformers' init leaves norms at 1 and biases at 0: perturb everything so a swapped
    weight, a missing bias or a norm read as identity changes the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith("norm.weight") or "ln_q" in name or "norm1" in name or "norm2" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.25 * torch.randn(p.shape, generator=g))


def prompt(text_before, grids, text_after):
    """Token ids: text, then per image <vision_start> pads <vision_end>, then text."""
    ids = list(text_before)
    for t, h, w in grids:
        ids += [V_START] + [IMAGE] * (t * h * w // 4) + [V_END]
    return ids + list(text_after)


def left_pad(rows):
    width = max(len(r) for r in rows)
    ids = [[0] * (width - len(r)) + r for r in rows]
    mask = [[0] * (width - len(r)) + [1] * len(r) for r in rows]
    return torch.tensor(ids), torch.tensor(mask)


def nested_key(key):
    """Original release key -> the nested layout of transformers 4.5x exports."""
    if key.startswith("visual."):
        return "model." + key
    if key.startswith("model."):
        return "model.language_model." + key[len("model."):]
    return key


def nest_keys(out):
    """Rewrites every weight file (and the shard index) of `out` to the nested key layout."""
    for f in sorted(out.glob("*.safetensors")):
        state = load_file(f)
        save_file({nested_key(k): v for k, v in state.items()}, f, metadata={"format": "pt"})
    index = out / "model.safetensors.index.json"
    if index.exists():
        data = json.loads(index.read_text())
        data["weight_map"] = {nested_key(k): v for k, v in data["weight_map"].items()}
        index.write_text(json.dumps(data, indent=2) + "\n")


def original_config(config):
    """The original release's flat config.json layout (rope_scaling with type mrope, in_chans)."""
    t = config.text_config
    v = config.vision_config
    return {
        "architectures": ["Qwen2_5_VLForConditionalGeneration"],
        "model_type": "qwen2_5_vl",
        "vocab_size": t.vocab_size,
        "hidden_size": t.hidden_size,
        "intermediate_size": t.intermediate_size,
        "num_hidden_layers": t.num_hidden_layers,
        "num_attention_heads": t.num_attention_heads,
        "num_key_value_heads": t.num_key_value_heads,
        "hidden_act": "silu",
        "rms_norm_eps": t.rms_norm_eps,
        "rope_theta": t.rope_parameters["rope_theta"],
        "max_position_embeddings": t.max_position_embeddings,
        "rope_scaling": {"type": "mrope", "mrope_section": t.rope_parameters["mrope_section"]},
        "tie_word_embeddings": config.tie_word_embeddings,
        "image_token_id": IMAGE,
        "video_token_id": VIDEO,
        "vision_start_token_id": V_START,
        "vision_end_token_id": V_END,
        "eos_token_id": EOS,
        "torch_dtype": "float32",
        "vision_config": {
            "depth": v.depth,
            "hidden_size": v.hidden_size,
            "intermediate_size": v.intermediate_size,
            "num_heads": v.num_heads,
            "in_chans": v.in_channels,
            "out_hidden_size": v.out_hidden_size,
            "patch_size": v.patch_size,
            "spatial_merge_size": v.spatial_merge_size,
            "temporal_patch_size": v.temporal_patch_size,
            "window_size": v.window_size,
            "fullatt_block_indexes": list(v.fullatt_block_indexes),
            "tokens_per_second": v.tokens_per_second,
            "hidden_act": "silu",
        },
    }


def build(case):
    name = case["name"]
    out = OUT / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    torch.manual_seed(case["seed"])
    config = make_config(case["text"], case["vision"], case["tie"])
    model = Qwen2_5_VLForConditionalGeneration(config)
    randomize(model, case["seed"])
    model.eval()

    # Save, then reload what was saved so the reference uses exactly the weights on disk
    # (bf16 cases round there).
    tmp = out / "hf"
    saved = model.to(torch.bfloat16) if case.get("bf16") else model
    saved.save_pretrained(tmp, max_shard_size=case.get("shard", "50GB"), safe_serialization=True)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tmp, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    for f in tmp.iterdir():
        if f.suffix in (".safetensors",) or f.name in ("config.json", "model.safetensors.index.json"):
            shutil.move(str(f), out / f.name)
    shutil.rmtree(tmp)
    # transformers 5 saves the original keys with a nested config.json: each case rewrites
    # one of the two so both key layouts and both config layouts are covered.
    if case["layout"] == "original":
        (out / "config.json").write_text(json.dumps(original_config(config), indent=2) + "\n")
    else:
        nest_keys(out)

    v = config.vision_config
    patch_dim = 3 * v.temporal_patch_size * v.patch_size * v.patch_size
    grids = case["grids"]
    g = torch.Generator().manual_seed(case["seed"] + 1)
    n_patches = sum(t * h * w for t, h, w in grids)
    pixel_values = torch.randn(n_patches, patch_dim, generator=g)
    grid_thw = torch.tensor(grids, dtype=torch.int64)
    input_ids, attention_mask = left_pad(case["rows"](grids))

    stages = {}
    hooks = [
        model.model.visual.patch_embed.register_forward_hook(lambda m, i, o: stages.__setitem__("patch_embeds", o)),
        model.model.visual.blocks[-1].register_forward_hook(lambda m, i, o: stages.__setitem__("blocks_out", o)),
        model.model.visual.merger.register_forward_hook(lambda m, i, o: stages.__setitem__("merged", o)),
    ]
    with torch.no_grad():
        mm_types = (input_ids == IMAGE).int()
        position_ids, deltas = model.model.get_rope_index(
            input_ids, mm_token_type_ids=mm_types, image_grid_thw=grid_thw, attention_mask=attention_mask
        )
        model.model.rope_deltas = None
        logits = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            pixel_values=pixel_values,
            image_grid_thw=grid_thw,
            mm_token_type_ids=mm_types,
        ).logits
        features = model.model.get_image_features(pixel_values, grid_thw).pooler_output
        features = torch.cat(features, 0) if isinstance(features, (list, tuple)) else features
    for h in hooks:
        h.remove()
    if case.get("bf16_reference"):
        # Two bf16 runs of transformers: SDPA (its default attention, scores and softmax in
        # f32 as r1's fused kernel keeps them) and eager (scores rounded to bf16). How far
        # apart they are is the yardstick for r1's own bf16 rounding.
        bf16_logits = {}
        for attention in ("sdpa", "eager"):
            bf16 = copy.deepcopy(model).to(torch.bfloat16)
            bf16.set_attn_implementation(attention)
            bf16.model.rope_deltas = None
            with torch.no_grad():
                bf16_logits[attention] = bf16(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    pixel_values=pixel_values.to(torch.bfloat16),
                    image_grid_thw=grid_thw,
                    mm_token_type_ids=mm_types,
                ).logits.float()
    # transformers 5 measures the delta from the unpadded length, older versions from the
    # padded one; the position of the first new token is the same in both.
    next_position = deltas.reshape(-1) + attention_mask.sum(-1)

    save_file(
        {
            "pixel_values": pixel_values.contiguous(),
            "grid_thw": grid_thw,
            "input_ids": input_ids,
            "attention_mask": attention_mask,
        },
        out / "inputs.safetensors",
    )
    save_file(
        {
            "patch_embeds": stages["patch_embeds"].contiguous(),
            "blocks_out": stages["blocks_out"].contiguous(),
            "merged": stages["merged"].contiguous(),
            "features": features.contiguous(),
            "position_ids": position_ids.contiguous(),
            "next_position": next_position.contiguous(),
            "logits": logits.contiguous(),
            **(
                {"logits_bf16": bf16_logits["sdpa"].contiguous(), "logits_bf16_eager": bf16_logits["eager"].contiguous()}
                if case.get("bf16_reference")
                else {}
            ),
        },
        out / "reference.safetensors",
    )

    if case.get("generate"):
        model.model.rope_deltas = None
        with torch.no_grad():
            generated = model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                pixel_values=pixel_values,
                image_grid_thw=grid_thw,
                mm_token_type_ids=(input_ids == IMAGE).int(),
                max_new_tokens=case["generate"],
                do_sample=False,
                eos_token_id=EOS,
                pad_token_id=0,
            )
        new_tokens = generated[:, input_ids.shape[1]:].tolist()
        (out / "generate.json").write_text(
            json.dumps(
                {
                    "max_new_tokens": case["generate"],
                    "eos_token_id": EOS,
                    "pad_token_id": 0,
                    "do_sample": False,
                    "note": "rows that hit eos are padded with pad_token_id afterwards",
                    "new_tokens": new_tokens,
                },
                indent=2,
            )
            + "\n"
        )
    print(f"{name}: {sum(f.stat().st_size for f in out.iterdir()) / 1024:.0f} KiB")


CASES = [
    # GQA ratio 1, tied head, original key layout and config; patch 14 like the real model;
    # a left-padded batch of two prompts with one image each; greedy generation.
    dict(
        name="gqa1_tied",
        seed=1,
        tie=True,
        layout="original",
        text=dict(hidden=32, inter=64, heads=2, kv=2, section=[2, 3, 3]),
        vision=dict(depth=2, hidden=32, inter=48, heads=2, patch=14, window=112, fullatt=[1]),
        grids=[[1, 4, 6], [1, 2, 4]],
        rows=lambda g: [prompt([5, 6, 7], g[:1], [8, 9]), prompt([10], g[1:], [11, 12, 13, 14, 15, 16, 17, 18, 19, 20])],
        generate=8,
        bf16_reference=True,
    ),
    # GQA ratio 2, untied head, transformers-5 layout; a 16x12-patch image (8x6 merged units
    # -> 2x2 windows, the last column cut short) and a 8x20 one (1x3 windows) in one prompt.
    dict(
        name="gqa2_untied_windows",
        seed=2,
        tie=False,
        layout="nested",
        text=dict(hidden=32, inter=48, heads=4, kv=2, section=[1, 1, 2]),
        vision=dict(depth=3, hidden=32, inter=48, heads=2, patch=4, window=32, fullatt=[1]),
        grids=[[1, 16, 12], [1, 8, 20]],
        rows=lambda g: [prompt([5, 6], g, [7, 8, 9])],
        generate=8,
    ),
    # GQA ratio 4, untied, bf16 weights on disk in two shards with an index, no full-attention
    # block; one non-square image in a left-padded batch whose second row is text only.
    dict(
        name="gqa4_bf16_sharded",
        seed=3,
        tie=False,
        bf16=True,
        layout="nested",
        shard="40KB",
        text=dict(hidden=32, inter=48, heads=4, kv=1, section=[1, 1, 2]),
        vision=dict(depth=2, hidden=16, inter=32, heads=1, patch=4, window=16, fullatt=[]),
        grids=[[1, 6, 10]],
        rows=lambda g: [prompt([5], g, [6, 7]), [8, 9, 10, 11]],
        bf16_reference=True,
    ),
]

if __name__ == "__main__":
    torch.set_num_threads(1)
    for case in CASES:
        build(case)
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"total: {total / 1024:.0f} KiB")

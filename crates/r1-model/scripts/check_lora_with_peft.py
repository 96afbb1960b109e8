#!/usr/bin/env python3
"""Loads r1's saved LoRA adapters onto transformers' Qwen2.5-VL with peft and writes its logits.

r1 writes adapters in PEFT's layout (`adapter_config.json`, `adapter_model.safetensors`,
PEFT's key names). This script checks that peft takes them as they are:

  1. `PeftModel.from_pretrained(base, ADAPTER)` on `Qwen2_5_VLForConditionalGeneration` loads
     every tensor of the file into a LoRA layer (none left over, none missing, none zero where the
     file is not), onto exactly the modules the file names;
  2. the base model reproduces the parity fixture's logits (the same inputs r1 is tested on);
  3. the adapted logits, and those of `merge_and_unload()`, are written to
     `tests/fixtures/lora/peft_logits.safetensors` (`logits`, `merged_logits`, [B, T, V] f32),
     which `cargo test --workspace --release --test lora` compares with r1's (`peft_logits_match`).

Making the fixture from scratch:
  cargo test --workspace --release --test lora -- --ignored write_peft_fixture   # r1 writes the adapter
  .venv/bin/python crates/r1-model/scripts/check_lora_with_peft.py               # peft reads it

`--adapter DIR --base DIR` checks any other adapter folder r1 wrote (a training checkpoint's
`model/`, say) against its base model the same way, without writing anything.

Needs torch, transformers and peft (`pip install torch transformers peft`).
"""

import argparse
import sys
from pathlib import Path

import torch
from peft import PeftModel
from safetensors.torch import load_file, save_file
from transformers import Qwen2_5_VLForConditionalGeneration

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
IMAGE = 300  # the parity fixtures' <|image_pad|> id


def load_base(path):
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    return model.eval()


def check_loaded(peft_model, adapter_dir):
    """Every tensor of r1's file must sit, unchanged, in the PEFT model's LoRA layers."""
    saved = load_file(str(Path(adapter_dir) / "adapter_model.safetensors"))
    state = {k: v for k, v in peft_model.state_dict().items() if ".lora_" in k}
    # PEFT names the live parameters with the adapter's name (".lora_A.default.weight"); the
    # file has it stripped, as PEFT itself saves.
    live = {k.replace(".default.", "."): v for k, v in state.items()}
    missing = sorted(set(saved) - set(live))
    extra = sorted(set(live) - set(saved))
    if missing or extra:
        sys.exit(f"key mismatch: in the file only {missing[:5]}, in the model only {extra[:5]}")
    worst = max((saved[k] - live[k]).abs().max().item() for k in saved)
    if worst != 0.0:
        sys.exit(f"a loaded adapter differs from the file by {worst}")
    print(f"peft loaded all {len(saved)} adapter tensors onto {len(saved) // 2} modules, bit for bit")


def inputs(case_dir):
    arrays = load_file(str(Path(case_dir) / "inputs.safetensors"))
    input_ids = arrays["input_ids"]
    return dict(
        input_ids=input_ids,
        attention_mask=arrays["attention_mask"],
        pixel_values=arrays["pixel_values"],
        image_grid_thw=arrays["grid_thw"],
        mm_token_type_ids=(input_ids == IMAGE).int(),
    )


def logits(model, batch):
    # transformers keeps the M-RoPE deltas of the last prompt between calls: start afresh.
    transformers_model = model.get_base_model() if isinstance(model, PeftModel) else model
    transformers_model.model.rope_deltas = None
    with torch.no_grad():
        return model(**batch).logits.contiguous()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", type=Path, help="an adapter folder r1 wrote (default: the fixture's)")
    parser.add_argument("--base", type=Path, help="its base model (default: the gqa1_tied fixture)")
    args = parser.parse_args()
    fixture = args.adapter is None
    case = FIXTURES / "gqa1_tied"
    adapter = args.adapter or FIXTURES / "lora" / "adapter"
    base_dir = args.base or case

    base = load_base(base_dir)
    peft_model = PeftModel.from_pretrained(base, str(adapter)).eval()
    check_loaded(peft_model, adapter)
    if not fixture:
        return

    batch = inputs(case)
    adapted = logits(peft_model, batch)
    with peft_model.disable_adapter():
        plain = logits(peft_model, batch)
    reference = load_file(str(case / "reference.safetensors"))["logits"]
    base_gap = (plain - reference).abs().max().item()
    print(f"base model against the parity fixture: max |difference| {base_gap:.2e}")
    if base_gap > 1e-5:
        sys.exit("the base model does not reproduce the parity fixture; regenerate it first")
    merged = logits(peft_model.merge_and_unload(), batch)
    print(f"adapters move the logits by up to {(adapted - plain).abs().max().item():.3f}; "
          f"merge_and_unload differs from the adapted forward by {(merged - adapted).abs().max().item():.2e}")
    out = FIXTURES / "lora" / "peft_logits.safetensors"
    save_file({"logits": adapted, "merged_logits": merged}, str(out), metadata={"format": "pt"})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

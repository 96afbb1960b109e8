#!/usr/bin/env python3
"""One GRPO step of r1 (burn) against one of TRL's GRPOTrainer: same checkpoint, same prompts,
same settings, on the CPU in float32. Prints one Markdown table: figure | r1 | TRL | r1/TRL.

The script
  1. builds a small random Qwen2.5-VL with transformers (the tiny preset's architecture:
     windowed vision attention with one full-attention block, 2x2 merger, GQA decoder with
     M-RoPE, tied embeddings; widths from --text-hidden / --vision-hidden, by default 256 / 128,
     3.4M parameters; 128 / 64 are the tiny preset's own sizes) and saves it as an r1 model
     directory: config.json, model.safetensors, generation_config.json, the
     tokenizer of --tokenizer-from (tokenizer.json, tokenizer_config.json, chat_template.jinja)
     and a preprocessor_config.json that resizes every image to 112x112 px (min_pixels =
     max_pixels = 112*112, patch 14, merge 2: 16 image tokens per prompt);
  2. writes r1_config.toml next to it: the GRPO step below in r1's config format, layered over
     the tiny preset;
  3. runs `cargo xtask bench --only training --json --model DIR --data DATA --config TOML
     --repeats N` for r1's figures (or reads that JSON from --r1-json, or skips r1 with
     --skip-r1);
  4. runs N + 1 steps of TRL's GRPOTrainer on the same directory and prompts, and times each
     optimiser step with a TrainerCallback (on_step_begin .. on_step_end: generation, reference
     log-probs, reward, forward, backward, clipping and AdamW); the first step is a warm-up and
     is not counted, as in the xtask bench (one warm-up step, then the median of --repeats).

The GRPO step on both sides: the first prompts of the training split in order (prompt = the
turns before the first assistant turn, images from the dataset root), --prompts prompts x
--group completions, at most --max-new-tokens new tokens, temperature 1.0, top-p 1.0, no top-k;
rewards and group-normalised advantages; k3 KL to a kept reference model with beta 0.01; one
optimiser step per rollout over all its completions in one micro-batch (so no old log-probs
are computed, the ratio is 1); token-mean loss; AdamW (lr 3e-4, betas 0.9/0.999, eps 1e-8,
weight decay 0.01), global grad-norm clip 1.0, constant rate; every parameter trained (vision
too); float32 on the CPU with torch.set_num_threads(os.cpu_count()). How TRL's settings map:
  per_device_train_batch_size = prompts x group, gradient_accumulation_steps = 1,
  steps_per_generation = 1, num_iterations = 1 -> one generation batch of 16 completions and
  one optimiser step per rollout, trained as one micro-batch like r1's micro_batch_size = 16;
  num_generations = group; max_completion_length = max-new-tokens; top_k = 0;
  beta = 0.01 (TRL's KL is the k3 estimator); loss_type = "dapo" (normalised by the
  completion tokens of the whole accumulated batch: r1's token-mean); scale_rewards = "group";
  epsilon = 0.2, epsilon_high = 0.3 (r1's clip_low/clip_high); bf16 = False,
  gradient_checkpointing = False (TRL's defaults are True for both), use_cpu = True;
  lr_scheduler_type = "constant"; shuffle_dataset = False (prompts in dataset order).
Not matched, and why it does not change the cost: r1's dual clip (3.0) and KL clamp (10.0)
have no TRL counterpart; with one optimiser step per rollout the ratio is exactly 1, so the
clips are inactive, and both are a few element-wise operations on [16, 48]. The rewards differ
(r1: its own strict-format + answer rules; TRL: a Python format/answer check of the same
kind): both cost microseconds. TRL generates with transformers' `generate` (KV cache, SDPA
attention), which is what a CPU user of GRPOTrainer gets without vLLM.

M-RoPE: transformers 5 builds Qwen2.5-VL's 3-D positions only when `mm_token_type_ids` reaches
`forward`/`generate`. TRL (1.x) passes it: the Qwen2.5-VL processor returns it by default,
GRPOTrainer forwards the processor's extra fields to `generate` (left-padded like the prompt
ids) and, for the log-prob and training forwards, extends it with zeros over the completion.
The script checks that the processor returns it and that every `generate` and log-prob or
training forward of the run received it, and fails otherwise: without it the text positions
would be 1-D and the TRL side would not compute the same model as r1.

The tokenizer: --tokenizer-from (default models/r1-tiny, which `cargo xtask bench --only
training` or `cargo xtask train` create). With --train-tokenizer instead, the script trains
a Qwen2-style byte-level BPE of at most 1024 tokens on the dataset's text with the
`tokenizers` package, the recipe of r1's tiny preset (crates/r1-model/src/tiny.rs), for
machines without a built r1.

Usage (the default paths are the repository's; needs torch, torchvision (transformers' Qwen2.5-VL processor
loads a video processor that requires it), transformers, trl, pillow, safetensors from PyPI):
  python crates/r1-model/scripts/bench_grpo_vs_trl.py [--tokenizer-from models/r1-tiny | --train-tokenizer]
      [--data datasets/default] [--repeats 3] [--out DIR] [--skip-r1 | --r1-json FILE]
The machine is shared, so absolute numbers are noisy; both sides are measured in one run.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers
from PIL import Image
from transformers import AutoProcessor, PrinterCallback, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, TrainerCallback

ROOT = Path(__file__).resolve().parents[3]
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>",
]
TAGS = ["<think>", "</think>", "<answer>", "</answer>"]
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]
# Every image is resized to this many pixels (112 x 112 for a square one).
IMAGE_PIXELS = 112 * 112
# The optimiser and loss settings both sides use (r1's tiny preset values).
LR = 3e-4
BETA = 0.01
CLIP_LOW, CLIP_HIGH = 0.2, 0.3

# The Qwen2-VL / Qwen2.5-VL instruct chat template, as r1 writes it (QWEN_VL_CHAT_TEMPLATE in
# crates/r1-model/src/chat.rs); only used with --train-tokenizer.
QWEN_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Qwen2's pre-tokenizer split (as in r1's tiny tokenizer); only used with --train-tokenizer.
QWEN2_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

# (key, figure, unit, TRL key or None); the rows whose values neither side has are left out.
FIGURES = [
    ("grpo_step", "GRPO step", "s", "step"),
    ("grpo_generate", "generation", "s", "generate"),
    ("grpo_generation_tps", "generation", "tokens/s", "generation_tps"),
    ("grpo_logp", "old + reference log-probs", "s", "logp"),
    ("grpo_update", "update (forward + backward + AdamW)", "s", "update"),
    ("grpo_training_tps", "training", "tokens/s", "training_tps"),
    ("grpo_mfu", "model FLOPs utilisation", "%", None),
    ("matmul_gflops", "matmul", "GFLOP/s", None),
]


# ---------------------------------------------------------------------------------------------
# Data


def read_samples(data, n):
    """The first `n` samples of the training split (wrapping around if it is shorter)."""
    with open(Path(data) / "qa" / "train.jsonl") as f:
        samples = [json.loads(line) for line in f if line.strip()]
    if not samples:
        sys.exit(f"{data}/qa/train.jsonl holds no sample")
    return [samples[i % len(samples)] for i in range(n)]


def prompt_turns(sample):
    """The turns before the first assistant turn."""
    turns = []
    for message in sample["messages"]:
        if message["role"] == "assistant":
            break
        turns.append(message)
    return turns


def trl_example(sample, root):
    """A TRL conversational example: the prompt turns with image placeholders, the images (in
    prompt order) opened from `root`, and the reference answer for the reward."""
    prompt, images = [], []
    for message in prompt_turns(sample):
        content = []
        for part in message["content"]:
            if part["type"] == "image":
                content.append({"type": "image"})
                images.append(Image.open(Path(root) / part["image"]).convert("RGB"))
            else:
                content.append({"type": "text", "text": part["text"]})
        prompt.append({"role": message["role"], "content": content})
    return {"prompt": prompt, "images": images, "answer": answer_text(sample["answer"])}


def answer_text(answer):
    """The reference answer as it appears inside <answer> </answer>."""
    if "label" in answer:
        return f"[[{answer['label']}]]"
    if "position" in answer:
        return "[" + ", ".join(f"{x:.3f}" for x in answer["position"]) + "]"
    return str(next(iter(answer.values())))


# ---------------------------------------------------------------------------------------------
# The checkpoint


def train_tokenizer(data, out):
    """A Qwen2-style byte-level BPE trained on the dataset's text (r1's tiny recipe), saved to
    `out` with r1's tokenizer_config.json and chat template."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    with open(Path(data) / "qa" / "train.jsonl") as f:
        samples = [json.loads(line) for line in f if line.strip()]
    texts = []
    for s in samples:
        for m in s["messages"]:
            texts.append("\n".join(p["text"] for p in m["content"] if p["type"] == "text"))
        texts.extend((s.get("options") or {}).values())
        sft = s.get("sft") or {}
        texts.extend(t for t in (sft.get("direct"), sft.get("cot")) if t)
        texts.append(f"<think> </think> <answer> {answer_text(s['answer'])} </answer>")
    texts.append("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n")
    for token in SPECIAL_TOKENS + TAGS:
        texts = [t.replace(token, " ") for t in texts]

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024 - len(SPECIAL_TOKENS) - len(TAGS),
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAGS])
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    tokenizer_config = {
        "tokenizer_class": "Qwen2TokenizerFast",
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 4096,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n")
    (out / "chat_template.jinja").write_text(QWEN_VL_CHAT_TEMPLATE)


def build_checkpoint(args, out):
    """Saves the random Qwen2.5-VL with the tokenizer files of `args.tokenizer_from` into `out`."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(args.tokenizer_from / "tokenizer.json"))
    ids = {}
    for token in SPECIAL_TOKENS + TAGS:
        ids[token] = tokenizer.token_to_id(token)
        if ids[token] is None:
            sys.exit(f"{args.tokenizer_from}/tokenizer.json lacks {token}")
    vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    hidden, heads = args.text_hidden, 4
    head_dim = hidden // heads
    # M-RoPE sections over head_dim / 2 frequencies, split 1/4, 3/8, 3/8 like Qwen's [16, 24, 24].
    half = head_dim // 2
    section = [half // 4, (half - half // 4) // 2, half - half // 4 - (half - half // 4) // 2]
    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=vocab,
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=4,
            num_attention_heads=heads,
            num_key_value_heads=2,
            rms_norm_eps=1e-6,
            max_position_embeddings=4096,
            rope_parameters={"rope_type": "default", "mrope_section": section, "rope_theta": 10000.0},
            bos_token_id=ids["<|endoftext|>"],
            eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(
            depth=2,
            hidden_size=args.vision_hidden,
            intermediate_size=2 * args.vision_hidden,
            num_heads=4,
            in_channels=3,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=112,
            out_hidden_size=hidden,
            fullatt_block_indexes=[1],
            tokens_per_second=2,
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    torch.manual_seed(args.seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    for name in TOKENIZER_FILES:
        shutil.copyfile(args.tokenizer_from / name, out / name)
    # r1's layouts of both files (ImageProcessorConfig::to_hf_json, Assets::save): the pixel
    # bounds under both names, so transformers 4.x and 5.x and r1 read the same 112x112.
    preprocessor = {
        "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": "Qwen2_5_VLProcessor",
        "do_resize": True,
        "do_rescale": True,
        "do_normalize": True,
        "do_convert_rgb": True,
        "resample": 3,
        "rescale_factor": 1 / 255,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "min_pixels": IMAGE_PIXELS,
        "max_pixels": IMAGE_PIXELS,
        "size": {"shortest_edge": IMAGE_PIXELS, "longest_edge": IMAGE_PIXELS},
        "patch_size": 14,
        "temporal_patch_size": 2,
        "merge_size": 2,
    }
    (out / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n")
    generation = {
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]],
        "pad_token_id": ids["<|endoftext|>"],
        "do_sample": True,
        "temperature": 1.0,
        "top_p": 1.0,
    }
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    return sum(p.numel() for p in model.parameters())


def r1_config_toml(args):
    """The GRPO step in r1's config format (crates/r1-grpo/src/config.rs), over the tiny preset."""
    completions = args.prompts * args.group
    return f"""\
# Written by crates/r1-model/scripts/bench_grpo_vs_trl.py: the GRPO step its TRL side runs,
# layered over the tiny preset (`cargo xtask bench --config`).
preset = "tiny"

[model]
freeze_vision = false

[rollout]
group_size = {args.group}
prompts_per_rollout = {args.prompts}
temperature = 1.0
top_p = 1.0
max_response_tokens = {args.max_new_tokens}

[update]
prompts_per_update = {args.prompts}  # one optimiser step per rollout
micro_batch_size = {completions}  # all the rollout's completions in one forward/backward
epochs = 1

[algorithm]
advantage = "grpo"

[algorithm.loss]
clip_low = {CLIP_LOW}
clip_high = {CLIP_HIGH}
kl_coef = {BETA}
kl_estimator = "k3"
aggregation = "token-mean"

[optim]
lr = {LR}
schedule = {{ kind = "constant" }}

[optim.adamw]
beta1 = 0.9
beta2 = 0.999
eps = 1e-8
weight_decay = 0.01
max_grad_norm = 1.0
"""


# ---------------------------------------------------------------------------------------------
# r1


def r1_figures(args, model_dir, config_path):
    """r1's rows as {key: value}: from --r1-json, or from `cargo xtask bench --json`."""
    if args.r1_json:
        text = args.r1_json.read_text()
    else:
        cmd = [
            "cargo", "xtask", "bench", "--only", "training", "--json",
            "--model", str(model_dir), "--data", str(args.data.resolve()),
            "--config", str(config_path), "--repeats", str(args.repeats),
        ]
        print("running:", " ".join(cmd), file=sys.stderr)
        # stderr goes through: the build and r1's progress stay visible.
        text = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, cwd=ROOT).stdout
    rows = json.loads(text)
    figures = {row["key"]: row["value"] for row in rows}
    setup = next((row.get("setup", "") for row in rows if row["key"] == "grpo_step"), "")
    if "grpo_mfu" in figures:
        figures["grpo_mfu"] *= 100.0
    return figures, setup


# ---------------------------------------------------------------------------------------------
# TRL


ANSWER = re.compile(r"^\s*<think>.*?</think>\s*<answer>(.*?)</answer>\s*$", re.DOTALL)


def completion_text(completion):
    """The text of a completion, plain or conversational."""
    if isinstance(completion, str):
        return completion
    parts = []
    for message in completion:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(p.get("text") or "" for p in content if isinstance(p, dict))
    return "".join(parts)


def format_and_answer_reward(completions, answer, **kwargs):
    """1 for the <think> </think> <answer> </answer> shape, plus 1 for the right answer."""
    rewards = []
    for completion, expected in zip(completions, answer):
        match = ANSWER.match(completion_text(completion))
        rewards.append(0.0 if match is None else 1.0 + float(match.group(1).strip() == expected))
    return rewards


class StepTimer(TrainerCallback):
    """Wall time of every optimiser step (the trainer's on_step_begin .. on_step_end), and the
    torch threads the steps ran with."""

    def __init__(self):
        self.steps = []
        self.threads = set()
        self._start = None

    def on_step_begin(self, args, state, control, **kwargs):
        self.threads.add(torch.get_num_threads())
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append({"step": time.perf_counter() - self._start, "end": time.perf_counter()})


def trl_figures(args, model_dir):
    """TRL's figures (medians over the steps after the first) and its setup facts."""
    from datasets import Dataset
    import trl
    from trl import GRPOConfig, GRPOTrainer

    class TimedGRPOTrainer(GRPOTrainer):
        """GRPOTrainer that also records, per step, the generation time and tokens, the time of
        the log-prob forwards without gradients (old/reference), and when the rollout
        (`_prepare_inputs`) ended. Each wrapper only times the parent's method."""

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.phases = []
            # Whether mm_token_type_ids reached generate / the log-prob forwards (M-RoPE).
            self.mrope = {"generate": [], "forward": []}

        def _phase(self):
            if not self.phases or "prepared" in self.phases[-1]:
                self.phases.append({"generate": 0.0, "tokens": 0, "logp": 0.0})
            return self.phases[-1]

        def _generate_single_turn(self, *a, **kw):
            fields = kw.get("multimodal_fields", a[2] if len(a) > 2 else None) or {}
            self.mrope["generate"].append("mm_token_type_ids" in fields)
            start = time.perf_counter()
            out = super()._generate_single_turn(*a, **kw)
            phase = self._phase()
            phase["generate"] += time.perf_counter() - start
            phase["tokens"] += sum(len(ids) for ids in out[0])
            return out

        def _get_per_token_logps_and_entropies(self, *a, **kw):
            self.mrope["forward"].append(kw.get("mm_token_type_ids") is not None)
            if torch.is_grad_enabled():
                return super()._get_per_token_logps_and_entropies(*a, **kw)
            start = time.perf_counter()
            out = super()._get_per_token_logps_and_entropies(*a, **kw)
            self._phase()["logp"] += time.perf_counter() - start
            return out

        def _prepare_inputs(self, *a, **kw):
            out = super()._prepare_inputs(*a, **kw)
            if self.model.training:
                self._phase()["prepared"] = time.perf_counter()
            return out

    torch.set_num_threads(os.cpu_count() or 1)
    steps = args.repeats + 1
    samples = read_samples(args.data, steps * args.prompts)
    examples = [trl_example(s, args.data) for s in samples]

    # The prompts as the processor sees them: their lengths for the setup line, and the check
    # that mm_token_type_ids comes with them (M-RoPE, see the module docstring).
    processor = AutoProcessor.from_pretrained(model_dir)
    lengths = []
    for ex in examples[: args.prompts]:
        enc = processor.apply_chat_template(
            with_images(ex["prompt"], ex["images"]), add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
        )
        if "mm_token_type_ids" not in enc:
            sys.exit("the Qwen2.5-VL processor returned no mm_token_type_ids: transformers would not apply M-RoPE")
        lengths.append(enc["input_ids"].shape[1])
        grid = enc["image_grid_thw"].tolist()
    check_tokenizer(model_dir, processor, examples[0])

    dataset = Dataset.from_list(examples)
    completions = args.prompts * args.group
    config = GRPOConfig(
        output_dir=str(args.work / "trl"),
        max_steps=steps,
        per_device_train_batch_size=completions,
        gradient_accumulation_steps=1,
        steps_per_generation=1,
        num_iterations=1,
        num_generations=args.group,
        max_completion_length=args.max_new_tokens,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        beta=BETA,
        epsilon=CLIP_LOW,
        epsilon_high=CLIP_HIGH,
        loss_type="dapo",
        scale_rewards="group",
        learning_rate=LR,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.01,
        adam_beta1=0.9,
        adam_beta2=0.999,
        adam_epsilon=1e-8,
        max_grad_norm=1.0,
        bf16=False,
        fp16=False,
        use_cpu=True,
        gradient_checkpointing=False,
        shuffle_dataset=False,
        seed=args.seed,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        log_completions=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
        remove_unused_columns=False,
    )
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32)
    timer = StepTimer()
    trainer = TimedGRPOTrainer(
        model=model,
        reward_funcs=format_and_answer_reward,
        args=config,
        train_dataset=dataset,
        callbacks=[timer],
    )
    # The step lines below replace the trainer's printed logs, which would mix with the table.
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    if len(timer.steps) != steps:
        sys.exit(f"TRL ran {len(timer.steps)} optimiser steps, expected {steps}")
    for where, seen in trainer.mrope.items():
        if not seen or not all(seen):
            sys.exit(f"TRL's {where} calls did not all get mm_token_type_ids: transformers would not apply M-RoPE")

    rows = []
    for i, step in enumerate(timer.steps):
        phase = trainer.phases[i] if len(trainer.phases) == steps else None
        row = {"step": step["step"]}
        if phase is not None:
            update = step["end"] - phase["prepared"]
            row.update(
                generate=phase["generate"],
                generation_tps=phase["tokens"] / max(phase["generate"], 1e-9),
                logp=phase["logp"],
                update=update,
                training_tps=phase["tokens"] / max(update, 1e-9),
                tokens=phase["tokens"],
            )
        rows.append(row)
        print(f"TRL step {i + 1}/{steps}{' (warm-up)' if i == 0 else ''}: "
              + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), file=sys.stderr)
    timed = rows[1:]
    figures = {key: statistics.median(r[key] for r in timed) for key in timed[0]}
    facts = {
        "optim": getattr(config.optim, "value", config.optim),
        "threads": sorted(timer.threads),
        "attention": model.config._attn_implementation,
        "prompt_tokens": lengths,
        "grid": grid,
        "trl": trl.__version__,
    }
    return figures, facts


def with_images(prompt, images):
    """`prompt` with its image placeholders filled with `images`, in order."""
    it = iter(images)
    return [
        {"role": m["role"], "content": [dict(p, image=next(it)) if p["type"] == "image" else p for p in m["content"]]}
        for m in prompt
    ]


def check_tokenizer(model_dir, processor, example):
    """transformers must tokenise the prompt text to the ids the tokenizers library (what r1
    uses) gives for tokenizer.json, or the two sides would not see the same prompts."""
    from tokenizers import Tokenizer

    text = processor.apply_chat_template(example["prompt"], add_generation_prompt=True, tokenize=False)
    ours = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json")).encode(text, add_special_tokens=False).ids
    theirs = processor.tokenizer(text, add_special_tokens=False)["input_ids"]
    if ours != theirs:
        sys.exit("transformers tokenises the prompt differently from tokenizer.json: the sides would not compare")


# ---------------------------------------------------------------------------------------------


def fmt(value):
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer-from", type=Path, default=ROOT / "models" / "r1-tiny",
                        help="directory with tokenizer.json, tokenizer_config.json, chat_template.jinja")
    parser.add_argument("--train-tokenizer", action="store_true",
                        help="train the tokenizer on the dataset instead of copying --tokenizer-from")
    parser.add_argument("--data", type=Path, default=ROOT / "datasets" / "default")
    parser.add_argument("--out", type=Path, help="where the checkpoint (DIR/model) and r1_config.toml go (default: a temporary directory)")
    parser.add_argument("--repeats", type=int, default=3, help="timed GRPO steps per side (TRL runs one more, as warm-up)")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--text-hidden", type=int, default=256, help="decoder width (4 layers, 4 heads, 2 KV heads, MLP 2x)")
    parser.add_argument("--vision-hidden", type=int, default=128, help="vision width (depth 2, 4 heads, MLP 2x)")
    parser.add_argument("--seed", type=int, default=0)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--skip-r1", action="store_true", help="measure TRL only")
    group.add_argument("--r1-json", type=Path, help="r1's rows from a saved `cargo xtask bench --json` output")
    args = parser.parse_args()
    if args.repeats < 1 or args.prompts < 1 or args.group < 2 or args.max_new_tokens < 1:
        parser.error("--repeats and --prompts must be at least 1, --group at least 2, --max-new-tokens at least 1")
    if args.text_hidden % 4 or (args.text_hidden // 4) % 2 or args.vision_hidden % 4:
        parser.error("--text-hidden and --vision-hidden must split into 4 heads of even size")

    with tempfile.TemporaryDirectory(prefix="r1-grpo-vs-trl-") as tmp:
        args.work = (args.out or Path(tmp)).resolve()
        args.work.mkdir(parents=True, exist_ok=True)
        if args.train_tokenizer:
            args.tokenizer_from = args.work / "tokenizer"
            train_tokenizer(args.data, args.tokenizer_from)
        missing = [n for n in TOKENIZER_FILES if not (args.tokenizer_from / n).is_file()]
        if missing:
            sys.exit(f"{args.tokenizer_from} lacks {', '.join(missing)}: run `cargo xtask bench --only training` "
                     "once (it creates models/r1-tiny), pass --tokenizer-from DIR, or --train-tokenizer")
        model_dir = args.work / "model"
        if model_dir.exists():
            shutil.rmtree(model_dir)
        parameters = build_checkpoint(args, model_dir)
        config_path = args.work / "r1_config.toml"
        config_path.write_text(r1_config_toml(args))
        print(f"checkpoint: {model_dir} ({parameters} parameters); r1 config: {config_path}", file=sys.stderr)

        ours, r1_setup = ({}, "") if args.skip_r1 else r1_figures(args, model_dir, config_path)
        theirs, facts = trl_figures(args, model_dir)

    lengths = facts["prompt_tokens"]
    mean_tokens = f"{theirs['tokens'] / (args.prompts * args.group):.1f}" if "tokens" in theirs else "?"
    t, h, w = facts["grid"][0]
    print(
        f"Qwen2.5-VL, {parameters / 1e6:.2f}M parameters (text {args.text_hidden} x 4 layers, GQA 4/2; vision "
        f"{args.vision_hidden} x 2), images {w * 14}x{h * 14} px ({t * h * w // 4} tokens), prompts "
        f"{min(lengths)}-{max(lengths)} tokens; {args.prompts} prompts x {args.group} completions, <= "
        f"{args.max_new_tokens} new tokens, k3 KL {BETA}, 1 optimiser step per rollout; float32, CPU, "
        f"{os.cpu_count()} threads (TRL steps ran with {'/'.join(map(str, facts['threads']))}); median of "
        f"{args.repeats} steps (TRL: after 1 warm-up step, mean completion {mean_tokens} tokens); "
        f"torch {torch.__version__}, transformers {transformers.__version__}, trl {facts['trl']} "
        f"({facts['attention']} attention, {facts['optim']}, mm_token_type_ids passed: M-RoPE on)"
    )
    if r1_setup:
        print(f"r1: {r1_setup}")
    print()
    print("| figure | r1 | TRL | r1/TRL |")
    print("|---|---|---|---|")
    for key, name, unit, trl_key in FIGURES:
        a = ours.get(key)
        b = theirs.get(trl_key) if trl_key else None
        if a is None and b is None:
            continue
        ratio = f"{a / b:.2f}" if a is not None and b else "—"
        print(f"| {name} ({unit}) | {fmt(a)} | {fmt(b)} | {ratio} |")
    print()
    print("r1/TRL below 1 for seconds, above 1 for rates and utilisation: r1 is faster.")


if __name__ == "__main__":
    main()

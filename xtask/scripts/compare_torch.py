#!/usr/bin/env python3
"""The PyTorch cross-check of a pair probe (README: "Perception pretraining"): the same SFT as
`cargo xtask sft --mode cot --data DATA --model models/r1-tiny --config <lr, batch 32, constant>`
run by transformers on the same checkpoint and questions (AdamW, weight decay 1e-2, gradient
norm clipped to 1, loss on the reply tokens), printing every 250 steps the mean loss per token
and how often the reply's first word (teacher-forced argmax) is right on the test split. It
tells a limit of the model from a fault of r1's training path.

  compare_torch.py DATA STEPS LR [THREADS]      (DATA: a `perception.py compare` pair probe)

Needs `pip install torch transformers` (into .venv); run from the repository root.
"""
import json, random, sys, time
import torch
from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration

data, steps, lr = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
torch.manual_seed(0); torch.set_num_threads(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
tok = AutoTokenizer.from_pretrained("models/r1-tiny")
model = Qwen2_5_VLForConditionalGeneration.from_pretrained("models/r1-tiny", torch_dtype=torch.float32)
im_end = tok.convert_tokens_to_ids("<|im_end|>")
pad = tok.convert_tokens_to_ids("<|endoftext|>")

def encode(row):
    prompt = tok.apply_chat_template([{"role": "user", "content": row["messages"][0]["content"][0]["text"]}],
                                     add_generation_prompt=True, tokenize=False)
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    r = tok(row["sft"]["cot"], add_special_tokens=False)["input_ids"] + [im_end]
    return p, r

def load(split):
    return [json.loads(l) for l in open(f"{data}/qa/{split}.jsonl")]

train = [encode(r) for r in load("train")]
test_rows = load("test")
test = [encode(r) for r in test_rows]
opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
rng = random.Random(0)

def batch(items):
    n = max(len(p) + len(r) for p, r in items)
    ids = torch.full((len(items), n), pad); labels = torch.full((len(items), n), -100); mask = torch.zeros((len(items), n), dtype=torch.long)
    for i, (p, r) in enumerate(items):
        s = p + r
        ids[i, :len(s)] = torch.tensor(s); mask[i, :len(s)] = 1
        labels[i, len(p):len(s)] = torch.tensor(r)
    return ids, mask, labels

def loss_of(ids, mask, labels):
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    l = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100, reduction="sum")
    return l / (labels[:, 1:] != -100).sum()

THINK = tok("<think>", add_special_tokens=False)["input_ids"]


@torch.no_grad()
def accuracy(items):
    """Share of `items` whose reply's first word after <think> is the argmax, teacher-forced."""
    good = 0
    for k in range(0, len(items), 100):
        chunk = items[k:k + 100]
        ids, mask, labels = batch(chunk)
        logits = model(input_ids=ids, attention_mask=mask).logits
        for i, (p, r) in enumerate(chunk):
            j = len(p) + len(THINK)
            good += int(logits[i, j - 1].argmax().item() == r[len(THINK)])
    return good / len(items)

t0 = time.time()
model.train()
run = []
for step in range(1, steps + 1):
    ids, mask, labels = batch(rng.sample(train, 32))
    loss = loss_of(ids, mask, labels)
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step()
    run.append(loss.item())
    if step % 250 == 0:
        model.eval(); acc = accuracy(test); model.train()
        print(f"step {step} loss {sum(run[-250:])/250:.4f} test word accuracy {acc:.3f} ({time.time()-t0:.0f}s)", flush=True)

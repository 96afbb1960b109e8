#!/usr/bin/env python3
"""Checks `cargo xtask serve` with OpenAI's official Python client.

Usage:
  python xtask/scripts/check_serve_openai.py [MODEL_DIR] [--base-url URL] [--xtask COMMAND] [--image PNG]

Without --base-url it starts `COMMAND serve --model MODEL_DIR --port 0` (COMMAND: `cargo xtask`
by default; MODEL_DIR: models/r1-tiny, which `cargo xtask train` creates), reads the address
it prints, and stops it at the end; with --base-url it talks to a server already running.

It lists the models, asks for a completion with an image sent as a data URL, asks for n=2
seeded samples, streams the greedy reply and compares it with the non-streamed one, and checks
that a bad request (max_tokens 0) and an unknown model are refused with OpenAI-style errors
that the client raises as BadRequestError and NotFoundError. It prints what it got and fails on
the first check that does not hold.

Needs the `openai` package (`pip install openai`); CI has no Python and does not run it.
"""

import argparse
import base64
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import openai

REPO = Path(__file__).resolve().parents[2]
DEFAULT_IMAGE = REPO / "datasets/default/images/pick_up_cup/v0/e0/front_0.png"
QUESTION = "Where should the gripper move next? Think inside <think> </think>, answer inside <answer> </answer>."


def check(condition, message):
    if not condition:
        sys.exit(f"FAILED: {message}")
    print(f"ok: {message}")


def start_server(xtask, model_dir):
    """Starts the server on a free port; returns the process and its base URL."""
    command = shlex.split(xtask) + ["serve", "--model", str(model_dir), "--port", "0", "--max-tokens", "16"]
    server = subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True)
    for line in server.stderr:
        print(f"server: {line.rstrip()}")
        if line.startswith("listening on "):
            # Keep reading its log, or a full pipe would block it.
            threading.Thread(target=lambda: [print(f"server: {l.rstrip()}") for l in server.stderr], daemon=True).start()
            return server, line.split()[2]
    sys.exit(f"the server exited ({server.wait()}) without printing its address")


def run_checks(client, image):
    models = client.models.list()
    ids = [m.id for m in models.data]
    print(f"models: {ids}")
    check(len(ids) == 1, "/v1/models lists the served model")
    model = ids[0]

    data_url = "data:image/png;base64," + base64.b64encode(image.read_bytes()).decode()
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": data_url}},
                {"type": "text", "text": QUESTION},
            ],
        }
    ]
    reply = client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=8)
    choice = reply.choices[0]
    print(f"greedy reply: {choice.message.content!r} (finish_reason {choice.finish_reason}, usage {reply.usage})")
    check(reply.object == "chat.completion" and choice.message.role == "assistant", "a chat.completion with an assistant message")
    check(choice.finish_reason in ("stop", "length"), "finish_reason is stop or length")
    check(reply.usage.prompt_tokens > 16 and 1 <= reply.usage.completion_tokens <= 8, "usage counts the image tokens and at most max_tokens")

    sampled = client.chat.completions.create(model=model, messages=messages, temperature=1.0, top_p=0.95, n=2, seed=3, max_tokens=6)
    print(f"n=2 sampled: {[c.message.content for c in sampled.choices]!r}")
    check([c.index for c in sampled.choices] == [0, 1], "n=2 gives choices 0 and 1")
    again = client.chat.completions.create(model=model, messages=messages, temperature=1.0, top_p=0.95, n=2, seed=3, max_tokens=6)
    check([c.message.content for c in again.choices] == [c.message.content for c in sampled.choices], "the same seed gives the same samples")

    stream = client.chat.completions.create(
        model=model, messages=messages, temperature=0, max_tokens=8, stream=True, stream_options={"include_usage": True}
    )
    pieces, finish, usage, chunks = [], None, None, 0
    for chunk in stream:
        chunks += 1
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            pieces.append(c.delta.content or "")
            finish = c.finish_reason or finish
    streamed = "".join(pieces)
    print(f"streamed in {chunks} chunks: {streamed!r} (finish_reason {finish}, usage {usage})")
    check(streamed == choice.message.content and finish == choice.finish_reason, "the stream carries the greedy reply")
    check(usage is not None and usage.total_tokens == reply.usage.total_tokens, "the stream ends with the usage")

    try:
        client.chat.completions.create(model=model, messages=messages, max_tokens=0)
        check(False, "max_tokens 0 is refused")
    except openai.BadRequestError as e:
        print(f"max_tokens 0: HTTP {e.status_code}, param {e.param!r}, type {e.type!r}: {e.message}")
        check(e.status_code == 400 and e.param == "max_tokens" and e.type == "invalid_request_error", "max_tokens 0 is a 400 naming max_tokens")
    try:
        client.chat.completions.create(model="no-such-model", messages=messages)
        check(False, "an unknown model is refused")
    except openai.NotFoundError as e:
        print(f"unknown model: HTTP {e.status_code}, code {e.code!r}: {e.message}")
        check(e.code == "model_not_found", "an unknown model is a 404 model_not_found")
    check(client.models.list().data[0].id == model, "the server still answers")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", nargs="?", type=Path, default=REPO / "models/r1-tiny")
    parser.add_argument("--base-url", help="a running server's API root, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--xtask", default="cargo xtask", help="how to run r1's command line (default: %(default)s)")
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    args = parser.parse_args()

    server = None
    base_url = args.base_url
    if base_url is None:
        server, base_url = start_server(args.xtask, args.model_dir)
    try:
        # A local server needs no key; the client insists on one.
        client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=120)
        print(f"openai {openai.__version__} against {base_url}")
        run_checks(client, args.image)
        print("all checks passed")
    finally:
        if server is not None:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()

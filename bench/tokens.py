"""Benchmark: prompt tokens per decision, text-only and with N = 1, 3, 6 rendered views at 256 and 512 px.

Tasks come the product's way (embedded CAVE server → ingestion → tasks → features from skeletons read through
cloud-volume → views rendered by tasks/views.py), prompts from agent/prompt.py. Every request goes to the real
vLLM CPU server of the tiny Qwen2.5-VL (deploy/vllm/make_tiny_vl_model.py; its image processor has the
settings of Qwen2.5-VL-32B-Instruct), so:

- **tiny**: `usage.prompt_tokens` of real chat completions, split into image tokens (the image processor's
  count, agent/image_tokens.py) and text tokens (the rest); the split is checked per request against the
  server: usage − N × tokens per view must equal `/tokenize` of the same messages without their images.
- **32B**: image tokens from the 32B processor settings (one token per 28×28 px after `smart_resize`, plus
  `<|vision_start|>`/`<|vision_end|>`); text tokens with Qwen2.5's own tokenizer when `--qwen-vocab FILE` is
  given (the Qwen2/2.5 byte-level BPE ranks; `dashscope/resources/qwen.tiktoken` of the PyPI package
  `dashscope`: `pip download --no-deps dashscope==2.0.2 -d qwen-vocab`, then
  `unzip -j qwen-vocab/*.whl dashscope/resources/qwen.tiktoken -d qwen-vocab`), else the tiny text count.

Ratios are to the text-only prompt of the same op measured in the same run.

    .venv/bin/python bench/tokens.py [--neurons 4 --k 2] [--qwen-vocab qwen-vocab/qwen.tiktoken]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
from collections import defaultdict

import numpy as np

QWEN_PATTERN = (  # Qwen2.5's pre-tokenizer split pattern
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
QWEN_SPECIAL = {
    "<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "<|vision_start|>": 151652,
    "<|vision_end|>": 151653, "<|image_pad|>": 151655,
}  # fmt: skip
CONFIGS = ((0, 512), (1, 256), (3, 256), (6, 256), (1, 512), (3, 512), (6, 512))  # (views, px)


def qwen_encoding(path: str):
    import tiktoken

    ranks = {}
    with open(path, "rb") as f:
        for line in f.read().splitlines():
            if line:
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
    return tiktoken.Encoding(
        "qwen2.5", pat_str=QWEN_PATTERN, mergeable_ranks=ranks, special_tokens=QWEN_SPECIAL
    )


def _text_parts(messages) -> list[tuple[str, str]]:
    out = []
    for m in messages:
        c = m["content"]
        out.append(
            (m["role"], c if isinstance(c, str) else "".join(p["text"] for p in c if p["type"] == "text"))
        )
    return out


def qwen_text_tokens(enc, messages) -> int:
    """Text tokens under Qwen2.5(-VL)'s chat template (the images' own tokens not included)."""
    n = sum(
        len(enc.encode(f"<|im_start|>{role}\n{text}<|im_end|>\n", allowed_special="all"))
        for role, text in _text_parts(messages)
    )
    return n + len(enc.encode("<|im_start|>assistant\n", allowed_special="all"))


def text_only(messages) -> list[dict]:
    """The messages with their image parts dropped (text parts kept as parts)."""
    out = []
    for m in messages:
        c = m["content"]
        out.append({**m, "content": c if isinstance(c, str) else [p for p in c if p["type"] == "text"]})
    return out


def tokenize_count(server_url: str, model: str, messages) -> int:
    import requests

    body = {"model": model, "messages": messages, "add_generation_prompt": True}
    response = requests.post(f"{server_url}/tokenize", json=body, timeout=60)
    response.raise_for_status()
    return int(response.json()["count"])


def _tasks_with_views(profile: str, neurons: int, k: int, seed: int):
    """The tasks with features, and their six views at each size: {px: [views per task]}."""
    from proofpilot.datastack.client import CaveConnection, ClientSettings
    from proofpilot.datastack.embedded.distractors import EmbeddedDistractors
    from proofpilot.datastack.embedded.server import start_server
    from proofpilot.datastack.ingest import IngestOptions, ingest
    from proofpilot.datastack.roles import CaveRoles
    from proofpilot.datastack.skeletons import skeleton_layer_url
    from proofpilot.tasks.build import TaskOptions, tasks_from_ingest
    from proofpilot.tasks.prepare import SkeletonCache, add_features, task_views

    with start_server(profile) as server:
        settings = ClientSettings(datastack=profile, server_address=server.url, write_server_cache=False)
        result = ingest(settings, IngestOptions(limit=neurons, use_cache=False, progress=False))
        roles = CaveRoles(CaveConnection(settings).client.chunkedgraph)
        tasks = tasks_from_ingest(
            result, EmbeddedDistractors(profile), TaskOptions(seed=seed, max_ops_per_neuron=k), roles=roles
        )
        cache = SkeletonCache(skeleton_layer_url(profile, server_url=server.url), max_items=100_000)
        tasks = add_features(tasks, cache)
        views = {px: [task_views(t, cache, size_px=px, n_views=6) for t in tasks] for px in (256, 512)}
    return tasks, views


def _mean(values) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="minnie65_synthetic")
    parser.add_argument("--neurons", type=int, default=4)
    parser.add_argument("--k", type=int, default=2, help="max operations per neuron")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--qwen-vocab", default=None, help="qwen.tiktoken ranks file (see the docstring)")
    parser.add_argument(
        "--llm-url", default=None, help="a running tiny-VL server's /v1 URL (default: start one)"
    )
    parser.add_argument("--model", default="tinyqwen-vl")
    args = parser.parse_args()

    from proofpilot.agent.client import AgentClient
    from proofpilot.agent.image_tokens import QWEN25_VL_32B
    from proofpilot.agent.prompt import build_request
    from proofpilot.agent.serving import VllmCpuServer, unavailable_reason, vision_config
    from proofpilot.tasks.views import view_names

    config = vision_config()
    if args.llm_url is None and (reason := unavailable_reason(config)):
        sys.exit(f"bench/tokens.py: {reason}")
    enc = qwen_encoding(args.qwen_vocab) if args.qwen_vocab else None
    tasks, views = _tasks_with_views(args.profile, args.neurons, args.k, args.seed)
    requests = {}
    for n, px in CONFIGS:
        per_view = QWEN25_VL_32B.view_tokens(px)
        for t, v in zip(tasks, views[px], strict=True):
            requests[(n, px, t.task_id)] = build_request(
                f"{t.task_id}|{n}|{px}", t.op_kind, t.features, v[:n], view_names=view_names(n),
                image_tokens=n * per_view,
            )  # fmt: skip

    async def ask(url: str, model: str):
        async with AgentClient(url, model, max_in_flight=4, timeout_s=300) as client:
            return await client.decide_all(list(requests.values()))

    def run(url: str, model: str):
        verdicts = asyncio.run(ask(url, model))
        server_url = url.removesuffix("/v1")
        text = {key: tokenize_count(server_url, model, text_only(r.messages)) for key, r in requests.items()}
        return verdicts, text

    if args.llm_url:
        verdicts, tokenized = run(args.llm_url, args.model)
        model = args.model
    else:
        with VllmCpuServer(config) as server:
            verdicts, tokenized = run(server.base_url, server.model)
            model = server.model

    by_key = dict(zip(requests, verdicts, strict=True))
    rows: dict[tuple[str, int, int], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    checked = mismatches = 0
    kind = {t.task_id: t.op_kind for t in tasks}
    for (n, px, tid), v in by_key.items():
        if not v.answers or not v.prompt_tokens:
            continue
        r = rows[(kind[tid], n, px)]
        server = v.prompt_tokens / v.answers
        image = v.image_tokens / v.answers
        checked += 1
        mismatches += server - image != tokenized[(n, px, tid)]
        r["server"].append(server)
        r["image"].append(image)
        r["completion"].append(v.completion_tokens / v.answers)
        qwen_text = qwen_text_tokens(enc, requests[(n, px, tid)].messages) if enc else server - image
        r["qwen"].append(qwen_text + n * QWEN25_VL_32B.view_tokens(px))

    print(
        f"profile {args.profile}: {len(tasks)} tasks from the first {args.neurons} neurons, K = {args.k}, "
        f"seed {args.seed}; {len(requests)} requests to the vLLM CPU server ({model}); "
        f"{sum(v.valid for v in verdicts)} valid verdicts"
    )
    print(
        f"server usage.prompt_tokens − N × processor tokens per view == /tokenize of the text: "
        f"{checked - mismatches} of {checked} requests"
    )
    print(
        "tokens per view (image processor of Qwen2.5-VL-32B, = tiny model's): "
        + ", ".join(f"{px} px → {QWEN25_VL_32B.view_tokens(px)}" for px in (256, 512))
    )
    qwen_note = "Qwen2.5 tokenizer" if enc else "tiny text tokens (no --qwen-vocab)"
    print(f"mean tokens per decision (per LLM call); 32B prompt = {qwen_note} + 32B image tokens")
    print(
        f"{'op':<6} {'views':>5} {'px':>4}  {'tiny text':>9} {'tiny image':>10} {'tiny prompt':>11} "
        f"{'×text':>6}  {'32B image':>9} {'32B prompt':>10} {'×text':>6}  {'completion':>10}"
    )
    for op in ("merge", "split"):
        base = rows.get((op, 0, 512))
        if not base:
            continue
        for n, px in CONFIGS:
            r = rows.get((op, n, px))
            if not r:
                continue
            server, image, qwen = _mean(r["server"]), _mean(r["image"]), _mean(r["qwen"])
            ratio, qwen_ratio = server / _mean(base["server"]), qwen / _mean(base["qwen"])
            print(
                f"{op:<6} {n:>5} {px if n else '-':>4}  {server - image:>9.1f} {image:>10.1f} "
                f"{server:>11.1f} {ratio:>6.2f}  {n * QWEN25_VL_32B.view_tokens(px):>9} {qwen:>10.1f} "
                f"{qwen_ratio:>6.2f}  {_mean(r['completion']):>10.1f}"
            )


if __name__ == "__main__":
    main()

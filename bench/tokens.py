"""Benchmark: mean prompt and completion tokens per decision, per op type, text-only and with views.

Tasks come the product's way (embedded CAVE server → ingestion → tasks → features from skeletons read through
cloud-volume → three rendered views per task), prompts from agent/prompt.py. Two tokenizers:

- **tiny**: the real vLLM CPU server (tiny random-weight Qwen2, a 1,024-token byte-level BPE built offline).
  Text-only prompt and completion tokens are `usage` of real chat completions (per answer); the text part of
  a with-views prompt is counted by the same server's `/tokenize` (a text-only model cannot take images).
- **Qwen2.5** (optional, `--qwen-vocab FILE`): the Qwen2/2.5 byte-level BPE (151,643 ranks plus control
  tokens) counted with tiktoken. Qwen's hub tokenizer cannot be fetched offline; the same ranks ship as
  `dashscope/resources/qwen.tiktoken` in the PyPI package `dashscope`, e.g.
  `pip download --no-deps dashscope==2.0.2 -d qwen-vocab`, then
  `unzip -j qwen-vocab/*.whl dashscope/resources/qwen.tiktoken -d qwen-vocab`.
  Prompts use Qwen2.5's chat template; completions re-serialize the tiny model's verdict as compact JSON
  (what xgrammar emits with `disable_any_whitespace`) plus `<|im_end|>`.

Images: Qwen2.5-VL makes one LLM token per 28×28 px after `smart_resize` (each side rounded to a multiple of
28), plus `<|vision_start|>` and `<|vision_end|>`; the ⌈H/28⌉·⌈W/28⌉ rule (docs/serving.md "Image tokens") is
printed for comparison. Images are tokenizer-independent, so both columns add the same image tokens.

    .venv/bin/python bench/tokens.py --qwen-vocab qwen-vocab/qwen.tiktoken
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import sys
from collections import defaultdict

import numpy as np

QWEN_PATTERN = (  # Qwen2.5's pre-tokenizer split pattern
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
QWEN_SPECIAL = {
    "<|endoftext|>": 151643,
    "<|im_start|>": 151644,
    "<|im_end|>": 151645,
    "<|vision_start|>": 151652,
    "<|vision_end|>": 151653,
    "<|image_pad|>": 151655,
}
VISION_WRAPPER_TOKENS = 2  # <|vision_start|> … <|vision_end|>


def qwen_image_tokens(height: int, width: int, factor: int = 28) -> int:
    """LLM tokens of one image in Qwen2.5-VL: smart_resize to multiples of 28 px, one token per 28×28 px."""
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    return (h // factor) * (w // factor)


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


def _text_parts(messages) -> list[tuple[str, str, int]]:
    """(role, text, number of images) per message."""
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, str):
            out.append((m["role"], content, 0))
        else:
            text = "".join(part["text"] for part in content if part["type"] == "text")
            out.append((m["role"], text, sum(part["type"] == "image_url" for part in content)))
    return out


def qwen_prompt_tokens(enc, messages, image_tokens: int) -> int:
    """Prompt tokens under Qwen2.5(-VL)'s chat template (images after the text, as prompt.py orders them)."""
    n = 0
    for role, text, images in _text_parts(messages):
        n += len(enc.encode(f"<|im_start|>{role}\n{text}", allowed_special="all"))
        n += images * (image_tokens + VISION_WRAPPER_TOKENS)
        n += len(enc.encode("<|im_end|>\n", allowed_special="all"))
    return n + len(enc.encode("<|im_start|>assistant\n", allowed_special="all"))


def text_only_messages(messages) -> list[dict]:
    """The messages with images dropped (text parts joined): what a text-only model can tokenize."""
    return [{"role": role, "content": text} for role, text, _ in _text_parts(messages)]


def tiny_count(server_url: str, model: str, messages) -> int:
    """Prompt tokens of `messages` under the served model's tokenizer and chat template (vLLM /tokenize)."""
    import requests

    body = {"model": model, "messages": messages, "add_generation_prompt": True}
    response = requests.post(f"{server_url}/tokenize", json=body, timeout=30)
    response.raise_for_status()
    return int(response.json()["count"])


def _mean_sd(values: list[float]) -> str:
    a = np.asarray(values, dtype=np.float64)
    return f"{a.mean():7.1f} ± {a.std(ddof=1) if len(a) > 1 else 0.0:5.1f}"


def _tasks_with_views(profile: str, neurons: int, k: int, seed: int, view_px: int):
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
        views = [task_views(t, cache, size_px=view_px) for t in tasks]
    return tasks, views


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="minnie65_synthetic")
    parser.add_argument("--neurons", type=int, default=10)
    parser.add_argument("--k", type=int, default=10, help="max operations per neuron")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--view-px", type=int, default=256)
    parser.add_argument("--qwen-vocab", default=None, help="qwen.tiktoken ranks file (see the docstring)")
    args = parser.parse_args()

    from proofpilot.agent.client import AgentClient
    from proofpilot.agent.prompt import build_request
    from proofpilot.agent.serving import CpuServerConfig, VllmCpuServer, unavailable_reason

    config = CpuServerConfig()
    reason = unavailable_reason(config)
    if reason:
        sys.exit(f"bench/tokens.py: {reason}")
    enc = qwen_encoding(args.qwen_vocab) if args.qwen_vocab else None

    tasks, views = _tasks_with_views(args.profile, args.neurons, args.k, args.seed, args.view_px)
    text_requests = [build_request(t.task_id, t.op_kind, t.features) for t in tasks]
    view_requests = [
        build_request(t.task_id, t.op_kind, t.features, images=v) for t, v in zip(tasks, views, strict=True)
    ]
    image_tokens = qwen_image_tokens(args.view_px, args.view_px)

    async def ask(server: VllmCpuServer):
        async with AgentClient(server.base_url, server.model, max_in_flight=8) as client:
            return await client.decide_all(text_requests)

    with VllmCpuServer(config) as server:
        verdicts = asyncio.run(ask(server))
        tiny_text = [tiny_count(server.url, server.model, list(r.messages)) for r in text_requests]
        tiny_view_text = [
            tiny_count(server.url, server.model, text_only_messages(r.messages)) for r in view_requests
        ]

    rows: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    mismatches = 0
    for task, verdict, req_t, req_v, n_text, n_view_text in zip(
        tasks, verdicts, text_requests, view_requests, tiny_text, tiny_view_text, strict=True
    ):
        if not verdict.answers:
            continue
        r = rows[task.op_kind]
        prompt_per_answer = verdict.prompt_tokens / verdict.answers
        mismatches += prompt_per_answer != n_text
        r["tiny_prompt"].append(prompt_per_answer)
        r["tiny_completion"].append(verdict.completion_tokens / verdict.answers)
        r["tiny_prompt_views"].append(n_view_text + req_v.n_images * (image_tokens + VISION_WRAPPER_TOKENS))
        if enc is not None:
            r["qwen_prompt"].append(qwen_prompt_tokens(enc, req_t.messages, image_tokens))
            r["qwen_prompt_views"].append(qwen_prompt_tokens(enc, req_v.messages, image_tokens))
            if verdict.valid:
                answer = json.dumps(
                    {"decision": verdict.decision, "confidence": verdict.confidence}, separators=(",", ":")
                )
                r["qwen_completion"].append(len(enc.encode(answer)) + 1)  # + <|im_end|>

    png = [len(b) for v in views for b in v]
    print(
        f"profile {args.profile}: {len(tasks)} tasks from the first {args.neurons} neurons, K = {args.k}, "
        f"seed {args.seed}; {sum(v.answers for v in verdicts)} answers from the vLLM CPU server "
        f"({sum(v.valid for v in verdicts)} valid verdicts)"
    )
    print(
        f"views: 3 per task, {args.view_px}×{args.view_px} px PNG (mean {np.mean(png) / 1024:.1f} KiB); "
        f"Qwen2.5-VL tokens per view {image_tokens} (smart_resize) + {VISION_WRAPPER_TOKENS} wrapper; "
        f"⌈H/28⌉·⌈W/28⌉ = {math.ceil(args.view_px / 28) ** 2}"
    )
    print(f"tiny usage.prompt_tokens vs /tokenize of the same messages: {mismatches} mismatches")
    print(
        "tokens per decision, mean ± sd (tiny = vLLM CPU server's tokenizer; Qwen2.5 = tiktoken + qwen ranks)"
    )
    header = f"{'op':<6} {'n':>4}  {'tiny prompt':>15} {'tiny +views':>15} {'tiny compl.':>15}"
    if enc is not None:
        header += f"  {'Qwen prompt':>15} {'Qwen +views':>15} {'Qwen compl.':>15}"
    print(header)
    for kind in ("merge", "split"):
        r = rows[kind]
        line = (
            f"{kind:<6} {len(r['tiny_prompt']):>4}  {_mean_sd(r['tiny_prompt'])} "
            f"{_mean_sd(r['tiny_prompt_views'])} {_mean_sd(r['tiny_completion'])}"
        )
        if enc is not None:
            line += (
                f"  {_mean_sd(r['qwen_prompt'])} {_mean_sd(r['qwen_prompt_views'])} "
                f"{_mean_sd(r['qwen_completion'])}"
            )
        print(line)
    if enc is None:
        print("Qwen2.5 columns: not computed (pass --qwen-vocab FILE; needs tiktoken)")


if __name__ == "__main__":
    main()

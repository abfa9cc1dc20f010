# The two commands: `make run` (a local stack with the Graph emulator) and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test install redis lint openapi bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# redis-server is needed by `make run` (local Redis) and by the end-to-end tests.
redis:
	@if ! command -v redis-server >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing redis-server with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	  elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	  else \
	    echo "redis-server is missing: install it (Debian: apt-get install redis-server) and retry" >&2; exit 1; \
	  fi; \
	fi

run: install redis
	$(BIN)/python -m service.devrun

lint: install
	$(BIN)/ruff check service tests
	$(BIN)/ruff format --check service tests
	$(BIN)/mypy

test: install redis lint
	$(BIN)/pytest

# Rewrite openapi.yaml from the code (a test fails when the committed file is stale).
openapi: install
	$(BIN)/python -m service.openapi > openapi.yaml

clean:
	rm -rf $(VENV) .run .pytest_cache .mypy_cache .ruff_cache

# A bounded benchmark on loopback (not run by `make test`: speed is measured, not asserted).
bench: install redis
	$(BIN)/python -m tests.bench.throughput

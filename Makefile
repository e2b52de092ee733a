SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Touched after a successful install; re-install only when pyproject.toml changes.
INSTALL_STAMP := $(VENV)/.installed
SERVICES := scripts/services
# Prefix for recipe lines that need the service URLs (SATELLITES_*_URL).
WITH_ENV := eval "$$($(SERVICES) env)" &&

PYTEST_ARGS ?=
BENCH_ARGS ?=
# benchmarks/engines.py: vector engines at 100k vectors; ENGINE_ARGS="--size 1000000" for 1M.
ENGINE_ARGS ?=
# benchmarks/verify.py: verify's rows/s at 50k rows; VERIFY_ARGS="--rows 10000" for less.
VERIFY_ARGS ?=

.PHONY: help install services services-down test lint format demo bench clean

help:
	@echo "make install        create $(VENV) and install the package with its dev extras"
	@echo "make services       start Postgres, Redis, RabbitMQ, Elasticsearch and S3 ($(SERVICES) up)"
	@echo "make services-down  stop them"
	@echo "make test           run pytest against the services (PYTEST_ARGS=... to pass options)"
	@echo "make lint           ruff check, ruff format --check, mypy, import contracts"
	@echo "make format         sort imports and format with ruff"
	@echo "make demo           run 'satellites demo' against the services"
	@echo "make bench          run benchmarks/run.py, engines.py, verify.py and related.py (BENCH_ARGS=..., ENGINE_ARGS=..., VERIFY_ARGS=...)"
	@echo "make clean          remove caches and build output (not $(VENV), not service data)"

install: $(INSTALL_STAMP)

$(INSTALL_STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@

services:
	$(SERVICES) up

services-down:
	$(SERVICES) down

test: install services
	$(WITH_ENV) $(BIN)/pytest $(PYTEST_ARGS)

# Runs all three checks and fails at the end if any failed.
lint: install
	@rc=0; \
	echo "+ ruff check ."; $(BIN)/ruff check . || rc=1; \
	echo "+ ruff format --check ."; $(BIN)/ruff format --check . || rc=1; \
	echo "+ mypy"; $(BIN)/mypy || rc=1; \
	echo "+ lint-imports"; $(BIN)/lint-imports --no-cache || rc=1; \
	exit $$rc

format: install
	$(BIN)/ruff check --select I --fix .
	$(BIN)/ruff format .

demo: install services
	$(WITH_ENV) $(BIN)/satellites demo

bench: install services
	$(WITH_ENV) $(BIN)/python benchmarks/run.py $(BENCH_ARGS)
	$(WITH_ENV) $(BIN)/python benchmarks/engines.py $(ENGINE_ARGS)
	$(WITH_ENV) $(BIN)/python benchmarks/verify.py $(VERIFY_ARGS)
	$(WITH_ENV) $(BIN)/python benchmarks/related.py

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache build dist
	find . -path ./$(VENV) -prune -o \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +

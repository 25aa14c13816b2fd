# Every target bootstraps the environment first: uv (into .tools/ if not on PATH), then
# `uv sync --frozen` from uv.lock. A fresh clone needs only python3 (3.11+) and make.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
PY := .venv/bin/python
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export PYTHONPATH := $(CURDIR)
# One "planned" event per asset for a range run instead of one per daily partition: halves the
# event-log writes of a years-long single-run backfill (the run, not each partition, shows failure).
export DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS := true

.PHONY: help env demo test ui sql bench clean

help:
	@echo "make demo   replay the embedded synthetic market into warehouse/rotation.duckdb (offline)"
	@echo "make test   run the test suite"
	@echo "make ui     start the Dagster UI on http://127.0.0.1:3000"
	@echo "make sql    SQL prompt on the published read-only warehouse (warehouse/rotation_read.duckdb)"
	@echo "make bench  run the benchmarks in bench/"

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check "uv>=0.5,<1"

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --quiet
	@touch $@

env: .venv/.synced

demo: env
	$(PY) -m pipeline demo

test: env
	$(PY) -m pytest -q

ui: env
	$(PY) -m dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

sql: env
	$(PY) -m pipeline sql

bench: env
	@for f in bench/*.py; do [ -e "$$f" ] || continue; echo "== $$f"; $(PY) "$$f" || exit 1; done

clean:
	rm -rf .venv .tools warehouse/*.duckdb warehouse/*.wal warehouse/replay

# Every target sets up what it needs: a fresh clone runs `make test` or `make demo` directly.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test lint typecheck unit demo bench bench-compare soak clean sysdeps venv

$(STAMP): pyproject.toml
	@bash scripts/ensure-sysdeps.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check p2p_orchestrator service_framework.py tests scripts examples
	$(VENV)/bin/ruff format --check p2p_orchestrator service_framework.py tests scripts examples

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(PY) -m pytest -m "not slow" -q

test: lint typecheck unit

demo: $(STAMP)
	$(PY) scripts/demo.py

# The bench extra (supervisord, psutil, py-spy) is installed only for the benchmarks.
# make bench BENCH_ARGS="--write-docs" records the full run in docs/benchmarks.md.
BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[test,bench]'
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	@bash scripts/ensure-bench-deps.sh
	$(PY) scripts/bench.py $(BENCH_ARGS)

# make bench-compare BASE=<revision> [COMPARE_ARGS="--quick --only remote_call"]: this tree against
# BASE, scenario by scenario, both measured alternately in one run.
bench-compare: $(BENCH_STAMP)
	@test -n "$(BASE)" || { echo "make bench-compare BASE=<git revision>"; exit 2; }
	@bash scripts/ensure-bench-deps.sh
	$(PY) scripts/bench_compare.py $(BASE) $(COMPARE_ARGS)

soak: $(STAMP)
	$(PY) -m pytest -m slow -q

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

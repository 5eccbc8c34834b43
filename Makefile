# Two commands for users: `make demo` and `make test`. Each sets itself up.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
# The newest Airflow 3 we support; `make test-min` runs the suite on the oldest.
AIRFLOW_VERSION ?= 3.3.2
AIRFLOW_MIN_VERSION ?= 3.1.0
PYTEST_ARGS ?=

STAMP := $(VENV)/.installed-$(AIRFLOW_VERSION)

BENCH_N ?= 100

.PHONY: demo ui test test-min lint docs bench venv clean system-deps mutation mutation-ci

$(STAMP): pyproject.toml scripts/bootstrap.sh $(wildcard constraints/*.txt)
	@bash scripts/bootstrap.sh "$(PYTHON)" "$(VENV)" "$(AIRFLOW_VERSION)"
	@touch $@

venv: $(STAMP)

demo: $(STAMP)
	@$(VENV)/bin/python scripts/demo.py

ui: $(STAMP)
	@bash scripts/ui.sh "$(VENV)"

system-deps:
	@bash scripts/system_deps.sh

test: $(STAMP) system-deps
	@$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

test-min:
	@$(MAKE) --no-print-directory test VENV=.venv-min AIRFLOW_VERSION=$(AIRFLOW_MIN_VERSION)

lint: $(STAMP)
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy

# Benchmarks at CI sizes (ratios within one run); full sizes: see BENCHMARKS.md.
bench: $(STAMP)
	@$(VENV)/bin/python -m benchmarks.emulator_capacity
	@$(VENV)/bin/python -m benchmarks.trigger_poll_cost --repeat 3
	@$(VENV)/bin/python -m benchmarks.catalog_throughput --n $(BENCH_N)
	@$(VENV)/bin/python -m benchmarks.charts

# Mutation testing of the money paths (issue 19; config: [tool.mutmut] in pyproject.toml).
# `mutation`: every mutant (~8 min on 2 cores), fails below 90 % killed per module (issue 19's
# target, not met yet). `mutation-ci` (~1-3 min): a fixed, seeded sample plus every mutant of the
# submit/re-attach/budget lines; it fails on any surviving money-line mutant and below 75 % in all
# (a floor to raise as tests land; per-module thresholds follow once every module reaches 90 %).
MUTATION_ARGS ?=
mutation: $(STAMP)
	@$(VENV)/bin/python scripts/mutation.py $(MUTATION_ARGS)

mutation-ci: $(STAMP)
	@$(VENV)/bin/python scripts/mutation.py --sample 3 --seed 19 --threshold 0 --min-total 75 $(MUTATION_ARGS)

docs: $(STAMP)
	@$(VENV)/bin/python -m mkdocs build --strict

clean:
	rm -rf mutants .venv .venv-min .pytest_cache .mypy_cache .ruff_cache demo-output test-artifacts site dist

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

.PHONY: demo ui test test-min lint docs bench venv clean system-deps explore

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

# The money-rule exploration at full size (CI runs a small seeded budget of the same test):
# EXPLORE_N random fault sequences; summary in test-artifacts/exploration-summary.json.
EXPLORE_N ?= 10000
EXPLORE_SEED ?= 20260212
explore: $(STAMP)
	@SEEDANCE_EXPLORE_EXAMPLES=$(EXPLORE_N) SEEDANCE_EXPLORE_SEED=$(EXPLORE_SEED) \
		$(VENV)/bin/python -m pytest tests/reliability/test_exploration.py::test_random_fault_sequences_keep_the_money_rules \
		-s -q -p no:cacheprovider --timeout=0 $(PYTEST_ARGS)

# Benchmarks at CI sizes (ratios within one run); full sizes: see BENCHMARKS.md.
bench: $(STAMP)
	@$(VENV)/bin/python -m benchmarks.emulator_capacity
	@$(VENV)/bin/python -m benchmarks.trigger_poll_cost --repeat 3
	@$(VENV)/bin/python -m benchmarks.catalog_throughput --n $(BENCH_N)
	@$(VENV)/bin/python -m benchmarks.charts

docs: $(STAMP)
	@$(VENV)/bin/python -m mkdocs build --strict

clean:
	rm -rf .venv .venv-min .pytest_cache .mypy_cache .ruff_cache demo-output test-artifacts site dist

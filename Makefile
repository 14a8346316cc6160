# Two commands on a fresh machine with Python 3.11+ and make: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DAGSTER_HOME ?= $(CURDIR)/.dagster
DEV_PORT ?= 3000
export DAGSTER_HOME

.PHONY: install demo test dev validate bench bench-decisions bench-accounts lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)  ## materialise the whole graph on the embedded sample account, print the ranked table
	$(BIN)/audience-engine demo

test: $(STAMP)  ## the whole test suite
	$(BIN)/python -m pytest -q

dev: $(STAMP)  ## the Dagster UI on the same warehouse and instance as the CLI (Ctrl-C stops it)
	@$(BIN)/python -m audience_assets.instance >/dev/null
	@echo "Dagster UI: http://127.0.0.1:$(DEV_PORT)  (instance $(DAGSTER_HOME); Ctrl-C stops it)"
	VIRTUAL_ENV=$(CURDIR)/$(VENV) PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dg dev --host 127.0.0.1 --port $(DEV_PORT)

validate: $(STAMP)
	$(BIN)/dagster definitions validate -w workspace.yaml
	$(BIN)/dagster definitions validate -w deploy/workspace.yaml

bench: $(STAMP)  ## 20,000 audiences x 30 days, end to end
	$(BIN)/python benchmarks/bench_recommend.py --audiences 20000 --days 30

bench-decisions: $(STAMP)  ## the engine against naive rules on simulated accounts with known truth (held-out seeds)
	$(BIN)/python benchmarks/bench_decisions.py --seeds heldout --jobs 2

bench-accounts: $(STAMP)  ## many accounts: serial on one DuckDB file against parallel on DuckLake (SQLite, PostgreSQL)
	$(BIN)/python benchmarks/bench_accounts.py

lint: $(STAMP)
	$(BIN)/ruff check audience_assets audience_assets_tests benchmarks

clean:
	rm -rf $(VENV) data .dagster

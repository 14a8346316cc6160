# Two commands on a fresh machine with Python 3.11+ and make: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DAGSTER_HOME ?= $(CURDIR)/.dagster

.PHONY: install demo test dev validate bench lint clean

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

$(DAGSTER_HOME)/dagster.yaml:
	mkdir -p $(DAGSTER_HOME)
	printf 'concurrency:\n  pools:\n    default_limit: 1\ntelemetry:\n  enabled: false\n' > $@

dev: $(STAMP) $(DAGSTER_HOME)/dagster.yaml  ## the Dagster UI on the same warehouse
	DAGSTER_HOME=$(DAGSTER_HOME) $(BIN)/dagster dev -w workspace.yaml

validate: $(STAMP)
	$(BIN)/dagster definitions validate -w workspace.yaml

bench: $(STAMP)  ## 20,000 audiences x 30 days, end to end
	$(BIN)/python benchmarks/bench_recommend.py --audiences 20000 --days 30

lint: $(STAMP)
	$(BIN)/ruff check audience_assets audience_assets_tests benchmarks

clean:
	rm -rf $(VENV) data .dagster

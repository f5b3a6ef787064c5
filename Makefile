# Two commands on a fresh machine: `make run` (the default optimisation) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Local, quiet defaults: Prefect's state inside the checkout, no telemetry.
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1
export PYBAMM_DISABLE_TELEMETRY ?= true

.PHONY: install run test benchmark ui clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: install
	$(BIN)/snhc optimise

test: install
	$(BIN)/python -m pytest

benchmark: install
	$(BIN)/python benchmarks/surrogate_throughput.py
	$(BIN)/python benchmarks/optimiser_efficiency.py

ui: install
	$(BIN)/snhc ui

clean:
	rm -rf $(VENV) .prefect .snhc_cache

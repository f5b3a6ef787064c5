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

.PHONY: install run test integration benchmark ui clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,team]"
	touch $(STAMP)

run: install
	$(BIN)/snhc optimise

# The suite on up to TEST_WORKERS processes (pytest-xdist; one per core): each worker fits its own calibration and
# starts its own Prefect test server, which the suite's half of the tests that run flows then share.
TEST_WORKERS ?= 4
test: install
	$(BIN)/python -m pytest --numprocesses=auto --maxprocesses=$(TEST_WORKERS)

# Team stack on 127.0.0.1: PostgreSQL (installed from Debian if missing), an MLflow server on it, a Prefect server,
# a process work pool and worker, a Dask-run deployment. Every process is stopped by PID at the end.
integration: install
	$(BIN)/python -m pytest -m integration tests/integration -p no:cacheprovider

benchmark: install
	$(BIN)/python benchmarks/model_throughput.py
	$(BIN)/python benchmarks/optimiser_efficiency.py
	$(BIN)/python benchmarks/physics_cost.py
	$(BIN)/python benchmarks/scale_out.py
	$(BIN)/python benchmarks/cli_startup.py
	$(BIN)/python benchmarks/optimise_wall.py
	$(BIN)/python benchmarks/pareto_front.py
	$(BIN)/python benchmarks/seed_agreement.py
	$(BIN)/python benchmarks/lab_loop.py
	$(BIN)/python benchmarks/lab_intervals.py
	$(BIN)/python benchmarks/physics_search.py

ui: install
	$(BIN)/snhc ui

clean:
	rm -rf $(VENV) .prefect .snhc_cache

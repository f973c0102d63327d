# Everything a fresh machine needs is installed by these targets (Python venv, Kafka jars via Maven).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install test unit integration chart helm-tools bench soak lint fmt run kafka-start kafka-stop sandbox schemas clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the bridge with its dev tools

helm-tools:  ## build once (~2 min on 2 cores) or reuse the cached Helm CLI the chart tests use
	scripts/helm-tools install

test: install helm-tools  ## the whole suite: unit, integration (real Kafka), fault, chart checks
	$(BIN)/pytest

chart: install helm-tools  ## helm lint/template + Kubernetes schemas + Dockerfile checks only
	$(BIN)/pytest tests/chart

unit: install
	$(BIN)/pytest tests/unit

integration: install
	$(BIN)/pytest tests/integration

lint: install  ## ruff + mypy strict + schema files in sync
	$(BIN)/ruff check bridge tests bench tools scripts/local-kafka
	$(BIN)/ruff format --check bridge tests bench tools
	$(BIN)/mypy
	$(BIN)/fonestorm-bridge schemas check

fmt: install
	$(BIN)/ruff check --fix bridge tests bench tools
	$(BIN)/ruff format bridge tests bench tools

schemas: install  ## regenerate schemas/*.json and the README settings table from the code
	$(BIN)/fonestorm-bridge schemas export
	$(BIN)/python scripts/update-readme

kafka-start:  ## local single-node Kafka (KRaft) on 127.0.0.1:9092
	scripts/local-kafka start

kafka-stop:
	scripts/local-kafka stop

run: install  ## local Kafka + FoneStorm sandbox + the bridge (receiver and worker), wired together
	VENV=$(VENV) scripts/run-local

clean:
	rm -rf $(VENV) .local .pytest_cache .mypy_cache .ruff_cache

bench: install  ## benchmarks, not tests: bench/RESULTS.md + bench/latency.png (~7 min)
	bench/ensure-wrk
	$(BIN)/python bench/run.py

soak: install  ## chaos soak of the command worker (~6 min): bench/SOAK.md; exits 1 on a violation
	$(BIN)/python -m bench.soak

# One-command entry points. Every target builds and reuses the virtualenv itself,
# so a fresh clone needs no other step.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export SPARK_LOCAL_IP ?= 127.0.0.1
export PYTHONUNBUFFERED := 1

# make demo RATINGS=path/to/ratings.csv MOVIES=path/to/movies.csv API_PORT=8001
DATA_ARGS := $(if $(RATINGS),--ratings $(RATINGS)) $(if $(MOVIES),--movies $(MOVIES)) $(if $(LINKS),--links $(LINKS))

.PHONY: help venv jars demo load train serve test test-unit test-integration lint format bench bench-tools docs clean \
	kafka-up kafka-down kafka-status topics replay ingest ingest-stream stack-up stack-down stack-status stack-bootstrap \
	api-requirements compose-up compose-bootstrap compose-down compose-test

KAFKA_MODE ?= kraft

help:
	@echo "make demo    load MovieLens -> Delta, train the model (EASE or ALS, by search) on Spark, register in MLflow, serve the API"
	@echo "make test    run the whole test suite (unit + static + integration, real Spark/Delta/MLflow)"
	@echo "make bench   measure training time, model quality and API throughput"
	@echo "make docs    render docs/benchmarks.md and the README's figures from bench/results"
	@echo "make load | train | serve | lint | clean"

$(STAMP): pyproject.toml
	@scripts/check-python.sh $(PYTHON)
	@scripts/check-java.sh
	@echo "==> creating $(VENV) and installing filmrec with all extras (a few minutes the first time)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# Show one line per package as progress; pipefail keeps a failed install failing.
	set -o pipefail; $(PY) -m pip install --progress-bar off -e ".[dev]" | { grep -E "^(Collecting|Successfully)" || true; }
	@touch $(STAMP)

venv: $(STAMP)

jars: venv
	@$(PY) -m filmrec jars > /dev/null

# Without KAFKA_BOOTSTRAP_SERVERS the demo starts the project's own broker (one code
# path: POST /ratings -> Kafka -> the API's consumer -> fold-in) and leaves it running
# for `make ingest` (make kafka-down stops it). DEMO_KAFKA=0: no broker, POST /ratings 503.
# DEMO_SERVE=0: stop after printing recommendations.
DEMO_FLAGS := $(if $(filter 0,$(DEMO_SERVE)),--no-serve)
demo: jars
	@set -e; if [ -z "$$KAFKA_BOOTSTRAP_SERVERS" ] && [ "$(DEMO_KAFKA)" != "0" ]; then \
	  echo "==> starting a local Kafka broker for POST /ratings (the first run downloads its jars)"; \
	  $(PY) -m devstack.broker up --mode kraft; \
	  export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092; \
	  $(PY) -m filmrec.ingestion.topics; \
	fi; \
	$(PY) -m filmrec demo $(DATA_ARGS) $(DEMO_FLAGS) $(SEARCH_ARGS)

load: jars
	$(PY) -m filmrec load $(DATA_ARGS)

# make train TRIALS=30 SEARCH_SECONDS=600 SEARCH=quick: the search and its budget per model family.
SEARCH_ARGS := $(if $(SEARCH),--search $(SEARCH)) $(if $(TRIALS),--trials $(TRIALS)) $(if $(SEARCH_SECONDS),--search-seconds $(SEARCH_SECONDS))
train: jars
	$(PY) -m filmrec train $(SEARCH_ARGS)

serve: venv
	$(PY) -m filmrec serve

# One line before pytest names the services and packages the integration tests will not
# find (they skip on a developer machine, fail under CI=true). The Compose platform's own
# test (tests/compose, `make compose-test`) is not part of it.
test: jars
	@scripts/check-test-services.sh
	$(PY) -m pytest -m "not compose" $(PYTEST_ARGS)

test-unit: venv
	$(PY) -m pytest -m "unit or static" $(PYTEST_ARGS)

test-integration: jars
	@scripts/check-test-services.sh
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

lint: venv  ## ruff (lint and format), mypy over the product package and the dev tooling
	$(VENV)/bin/ruff check src tests api airflow/dags spark devstack bench test-connections.py
	$(VENV)/bin/ruff format --check src tests spark airflow/dags devstack bench
	$(VENV)/bin/mypy src devstack bench

format: venv
	$(VENV)/bin/ruff format src tests spark airflow/dags devstack bench
	$(VENV)/bin/ruff check --fix src tests spark airflow/dags devstack bench

# --- Kafka: a single-node broker from Maven Central jars, replay and ingestion -------
kafka-up: venv  ## Kafka 3.9 on 127.0.0.1:9092 (KAFKA_MODE=zookeeper for ZooKeeper + broker)
	$(PY) -m devstack.broker up --mode $(KAFKA_MODE)

kafka-down: venv
	$(PY) -m devstack.broker down

kafka-status: venv
	$(PY) -m devstack.broker status

topics: venv
	$(PY) -m filmrec.ingestion.topics

replay: venv  ## make replay [RATINGS=path/to/ratings.csv] [RATE=500] [LIMIT=1000]
	$(PY) -m filmrec.ingestion.replay $(if $(RATINGS),--ratings $(RATINGS)) $(if $(RATE),--rate $(RATE)) $(if $(LIMIT),--limit $(LIMIT))

ingest: jars  ## one availableNow Kafka -> Delta run, merged into clean
	$(PY) -m filmrec.ingestion.kafka_ingest

# Ctrl-C (or SIGTERM) stops it after the running micro-batch. While it runs, `make ingest`
# and the ratings_ingestion DAG find the checkpoint locked and stop at once.
ingest-stream: jars  ## continuous Kafka -> Delta ingestion [TRIGGER_SECONDS=30]
	$(PY) -m filmrec.ingestion.kafka_ingest --continuous $(if $(TRIGGER_SECONDS),--trigger-seconds $(TRIGGER_SECONDS))

# --- The whole platform natively (no Docker), on the Compose ports -------------------
stack-up: jars  ## make stack-up [STREAMING=1]: with the continuous ingestion job (ratings-stream)
	scripts/stack.sh up $(if $(STREAMING),--streaming)

stack-down: venv
	scripts/stack.sh down

stack-status: venv
	scripts/stack.sh status

stack-bootstrap: stack-up  ## make stack-bootstrap USERS=100: load MovieLens, train on the Spark master
	scripts/stack.sh bootstrap $(if $(USERS),--users $(USERS))

api-requirements: venv  ## re-lock api/requirements.txt from pyproject.toml (pip-compile)
	$(PY) -m devstack.api_requirements

# --- The Docker Compose platform (docs/compose.md) -------------------------------------
# scripts/compose.sh picks the engine: this machine's Docker (24+, Compose 2.20+) as it
# is, else a private one with stand-in images (docker/stand-ins), never a system Docker.
COMPOSE := scripts/compose.sh
# SEARCH is also the Airflow services' default search: unpausing the daily als_training
# starts its latest scheduled run at once, and that run, not the manual one after it
# (which finds no new data), is the one that trains.
compose-up:  ## ./init.sh (build, start, wait healthy), then compose-bootstrap: ends serving a champion [SEARCH=quick]
	$(if $(SEARCH),FILMREC_TRAINING_SEARCH=$(SEARCH)) $(COMPOSE) --run ./init.sh
	$(MAKE) compose-bootstrap

compose-bootstrap:  ## load MovieLens and train through Airflow's REST API [SEARCH=quick]
	$(PYTHON) scripts/compose-bootstrap.py $(if $(SEARCH),--search $(SEARCH))

# VOLUMES=1 removes the Kafka topic, so the streaming checkpoints (Kafka offsets, under
# lakehouse/_checkpoints: filmrec.lakehouse.tables) go with it: kept, they would point past
# the end of the next topic and the ingestion job would refuse to start. The Delta tables
# stay (the source of truth); replayed events are de-duplicated by their ids.
compose-down:  ## stop the platform [VOLUMES=1: and remove its volumes and Kafka checkpoints]; stops a private engine too
	$(COMPOSE) down $(if $(filter 1,$(VOLUMES)),--volumes)
	$(if $(filter 1,$(VOLUMES)),rm -rf lakehouse/_checkpoints)
	$(COMPOSE) --stop-engine

compose-test: venv  ## the user's path, end to end, on the real Compose file (tests/compose)
	$(PY) -m pytest -m compose tests/compose $(PYTEST_ARGS)

bench: jars
	$(PY) -m bench $(BENCH_ARGS)

bench-tools: venv  ## build the bench's Go tools (vegeta, toxiproxy; Go >= 1.23) now, not on first use
	$(PY) -m bench.go_tools

docs: venv  ## docs/benchmarks.md and the README's headline table from bench/results/*.json
	$(PY) -m bench.render_docs

clean:
	rm -rf var lakehouse/*/ lakehouse/_* .pytest_cache

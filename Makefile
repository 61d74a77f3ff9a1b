# Two commands for a newcomer: `make dev` and `make test`. Both bootstrap .venv on first use.
# `make dev` runs the whole cluster (Valkey, a leader, 2 followers, the proxy) behind one URL;
# SERVICE=module:service runs another service, PORT=n moves the URL.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# One stamp per set of extras: `make dev` installs what running skiff needs (.[dev]: the
# embedded Valkey), `make test` adds the test toolchain (.[dev,test]: pytest, mypy, ruff,
# playwright, ...) to the same venv, so `make test` after `make dev` only adds the test extras.
DEV_STAMP := $(VENV)/.installed-dev
TEST_STAMP := $(VENV)/.installed-test
# pip stays quiet and the recipes say what it is doing. The filter drops setuptools' notice
# that an editable install may be shadowed by same-named folders in the working directory:
# here those folders (graph/, broker/, ...) are the installed sources themselves.
PIP := PYTHONWARNINGS='ignore:Editable installation' $(BIN)/python -m pip --quiet

.PHONY: dev test lint bench bench-skip skip-runtime install clean containers test-containers chaos soak failover slowloris

$(BIN)/python:
	@echo "make: creating $(VENV), a Python virtual environment for skiff"
	@$(PYTHON) -m venv $(VENV)
	@$(PIP) install --upgrade pip

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	@echo "make: installing skiff and its dependencies into $(VENV)..."
	@$(PIP) install -e '.[dev]'
	@touch $@

$(TEST_STAMP): $(DEV_STAMP)
	@echo "make: adding the test toolchain (pytest, mypy, ruff, playwright, ...) to $(VENV)..."
	@$(PIP) install -e '.[dev,test]'
	@touch $@

# Everything a contributor uses: running, tests, lint.
install: $(TEST_STAMP)

dev: $(DEV_STAMP)
	@$(BIN)/skiff dev $(SERVICE)

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The container suites (docker/local-engine.sh: rootful Podman with Docker's API, images built
# locally): the Redis-backed suites against a testcontainers Redis, and docker/compose.yml brought
# up and broken under its clients (tests/deploy/test_compose.py). Linux, root.
CONTAINERS_STAMP := $(VENV)/.containers-stamp

$(CONTAINERS_STAMP): $(TEST_STAMP)
	@echo "make: adding podman-compose to $(VENV)..."
	@$(PIP) install -e '.[dev,test,containers]'
	@touch $@

containers: $(CONTAINERS_STAMP)
	PYTHON=$(BIN)/python bash docker/local-engine.sh

test-containers: containers
	eval "$$(PYTHON=$(BIN)/python bash docker/local-engine.sh env)" && \
		$(BIN)/python -m pytest -q -m containers $(PYTEST_ARGS)

# Skip 0.0.15's own runtime (npm, into $XDG_CACHE_HOME/skiff-bench-skip; needs node and npm):
# the tests that compare skiff with Skip, or chain onto it, use it and are skipped without it.
skip-runtime: $(TEST_STAMP)
	$(BIN)/python -m bench.skip_runtime install

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The benchmark suite (not part of `make test`): every bench/ script, one summary table,
# bench/results/<date>.json and the plots in docs/img/. BENCH_ARGS=--quick for a short run.
# `make bench-skip` runs it side by side with Skip 0.0.15, installed from npm into a scratch
# folder outside the repo ($XDG_CACHE_HOME/skiff-bench-skip; needs node and npm).
BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): $(TEST_STAMP)
	@echo "make: adding the benchmark tools (matplotlib, psutil) to $(VENV)..."
	@$(PIP) install -e '.[dev,test,bench]'
	@touch $@

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run_all $(BENCH_ARGS)

bench-skip: $(BENCH_STAMP)
	$(BIN)/python -m bench.skip_runtime install
	$(BIN)/python -m bench.run_all --skip $(BENCH_ARGS)

# Fault injection and endurance (not part of `make test`, which runs one short seeded chaos run).
# `SEED=7 RUNS=5 FAULTS=30 make chaos`: seeded scenarios (tests/chaos/run.py), JSON reports, exit 1
# on any invariant violation (CHAOS_KEEP=1 keeps the process logs). `SOAK_SECONDS=600 make soak`:
# steady writes and 1,000 streams, RSS/fds/tasks per process over time (tests/soak/run.py).
SEED ?= 1
RUNS ?= 5
FAULTS ?= 30
# TOPOLOGY=sentinel: Redis with a replica and Sentinels, fault kinds incl. redis_failover.
TOPOLOGY ?= single
SOAK_SECONDS ?= 600

chaos: $(TEST_STAMP)
	$(BIN)/python -m tests.chaos.run --seed $(SEED) --runs $(RUNS) --faults $(FAULTS) --topology $(TOPOLOGY)

soak: $(TEST_STAMP)
	$(BIN)/python -m tests.soak.run --seconds $(SOAK_SECONDS)

# Redis failover beyond `make test`'s two Sentinel runs: three services on a 3-shard Cluster,
# one shard's primary killed under load (tests/cluster/test_redis_cluster_failover.py).
failover: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -m failover $(PYTEST_ARGS)

# Connections that never finish a request (docs/security.md, "Client limits"): CONNECTIONS slow
# clients at a real proxy and a real follower, all closed after HEADER_TIMEOUT while new streams
# are served (tests/security/slowloris.py; `make test` runs 10,000 with a 4 s timeout).
CONNECTIONS ?= 10000
HEADER_TIMEOUT ?= 2

slowloris: $(TEST_STAMP)
	$(BIN)/python -m tests.security.slowloris --connections $(CONNECTIONS) --header-timeout $(HEADER_TIMEOUT)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

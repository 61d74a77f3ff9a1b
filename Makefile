# Two commands for a newcomer: `make dev` and `make test`. Both bootstrap .venv on first use.
# `make dev` runs the whole cluster (Valkey, a leader, 2 followers, the proxy) behind one URL;
# SERVICE=module:service runs another service, PORT=n moves the URL.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: dev test lint bench install clean containers test-containers

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

dev: $(STAMP)
	$(BIN)/skiff dev $(SERVICE)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The container suites (docker/local-engine.sh: rootful Podman with Docker's API, images built
# locally): the Redis-backed suites against a testcontainers Redis, and docker/compose.yml brought
# up and broken under its clients (tests/deploy/test_compose.py). Linux, root.
CONTAINERS_STAMP := $(VENV)/.containers-stamp

$(CONTAINERS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,containers]'
	touch $(CONTAINERS_STAMP)

containers: $(CONTAINERS_STAMP)
	PYTHON=$(BIN)/python bash docker/local-engine.sh

test-containers: containers
	eval "$$(PYTHON=$(BIN)/python bash docker/local-engine.sh env)" && \
		$(BIN)/python -m pytest -q -m containers $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

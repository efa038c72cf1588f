# Two set-up commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CHROMIUM ?= /usr/bin/chromium

.PHONY: demo test bench lint browser interop axe

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# Browser tests drive Debian's Chromium through Playwright; Playwright's own download is not used.
browser:
	@test -x $(CHROMIUM) || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

demo: $(BIN)/.installed
	$(BIN)/smart-app demo

# The interop tests' independent FHIR engine: Medplum's fhir-router on Node 22, both from npm (package-lock.json).
interop:
	@cd tests/interop/medplum && { test -d node_modules && test ! package-lock.json -nt node_modules/.package-lock.json; } || \
	  { npm ci --no-audit --no-fund && test -x node_modules/node/bin/node; }

# The accessibility tests inject axe-core (npm, pinned by package-lock.json) into the app's pages.
axe:
	@cd tests/browser/axe && { test -d node_modules && test ! package-lock.json -nt node_modules/.package-lock.json; } || \
	  { npm ci --no-audit --no-fund && test -f node_modules/axe-core/axe.min.js; }

test: $(BIN)/.installed browser interop axe
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 3 --dist loadscope

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy

# Performance figures on SQLite and PostgreSQL from generated data (see bench/README.md); BENCH_ARGS=--quick for a smoke run.
bench: $(BIN)/.installed
	$(BIN)/python -m bench.run $(BENCH_ARGS)

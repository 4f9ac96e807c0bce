# exotel-voice: `make demo` and `make test` do all of their own set-up on Debian 12.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
NPM_STAMP := tests/browser/node_modules/.installed-stamp

.PHONY: all apt venv npm lint test test-fast demo bench clean

all: test

apt:
	@bash scripts/setup-apt.sh

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,bench,audio]'
	@touch $@

venv: $(STAMP)

npm: $(NPM_STAMP)

$(NPM_STAMP): tests/browser/package.json tests/browser/entry.js tests/browser/jssip-entry.js
	cd tests/browser && npm install --no-audit --no-fund --silent && npm run --silent build \
		&& npm run --silent build:jssip
	@touch $@

lint: venv
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/mypy --strict src/exotel_voice

test: apt venv npm lint
	bash scripts/run-tests.sh

# Everything that needs no apt, npm or network namespace: the unit tests and the media
# tests between our own sessions on 127.0.0.1 (tests that need the namespace skip, saying why).
test-fast: venv
	$(VENV)/bin/python -m pytest -m "not interop"

demo: apt venv
	scripts/in-netns.sh $(VENV)/bin/exotel-voice demo

bench: apt venv npm
	scripts/in-netns.sh $(PY) bench/run_all.py

clean:
	rm -rf $(VENV) tests/browser/node_modules tests/browser/dist .mypy_cache .pytest_cache .ruff_cache

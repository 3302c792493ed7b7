# reprodl: make book | make test | make test-fast | make execute | make lint   (each sets up .venv)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# The real MNIST: $REPRODL_DATA if set, else the shared folder beside the checkout when present.
REPRODL_DATA ?= $(abspath $(wildcard ../shared/data/mnist))
export REPRODL_DATA

.PHONY: install book test test-fast execute lint format freeze bench crosscheck clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

## The HTML book in _build/html, warnings as errors. It shows the committed, verified outputs.
book: $(STAMP)
	$(BIN)/jupyter-book build . --warningiserror --keep-going

## Every test: unit tests, the exact-output gate (pytest --nbval), book build and browser tests.
## It first installs what the emulated-CPU and browser tests need when it can (root with apt-get);
## where it cannot, those tests are skipped with one line each (under CI=true they fail).
test: $(STAMP)
	@bash tools/ensure_qemu.sh
	@bash tools/ensure_browser.sh
	$(BIN)/python -m pytest

## The everyday lane: unit tests only (no TensorFlow subprocesses, notebooks, book or browser).
FAST := -m "not slow and not book and not browser"
test-fast: $(STAMP)
	$(BIN)/python -m pytest $(FAST) tests/

## Re-execute every notebook in place in the pinned environment (the only way outputs change).
execute: $(STAMP)
	$(BIN)/python tools/execute_notebooks.py chapters/*.ipynb

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Rewrite requirements.txt from the current .venv.
freeze: $(STAMP)
	{ sed -n '1,2p' requirements.txt; $(BIN)/pip freeze --exclude-editable | grep -iv '^reprodl'; } > requirements.tmp && mv requirements.tmp requirements.txt

bench: $(STAMP)
	$(BIN)/python benchmarks/price_of_exactness.py --repeats 5 --out src/reprodl/results/price_of_exactness.json

## Re-run the cross-CPU battery natively and on the emulated CPUs; rewrite the committed records.
crosscheck: $(STAMP)
	@bash tools/ensure_qemu.sh
	$(BIN)/python -m reprodl crosscheck --all-settings --emulate Haswell,Skylake-Server,Icelake-Server,EPYC-Rome,EPYC-Milan --out src/reprodl/results/cross_cpu

clean:
	rm -rf _build

# reprodl: make book | make test | make test-fast | make execute | make lint   (each sets up .venv)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# The real MNIST: $REPRODL_DATA if set, else the shared folder beside the checkout when present.
REPRODL_DATA ?= $(abspath $(wildcard ../shared/data/mnist))
export REPRODL_DATA

.PHONY: install book test test-fast test-chapter test-module durations execute lint format freeze bench crosscheck cache-sweep clean

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

## Every test: unit tests, the exact-output gate (pytest --nbval, every chapter executed outside
## the checkout), book build and browser tests, on two pytest workers (a file's tests, a test
## class, a notebook's cells, stay on one worker; the longest start first), then the ten slowest.
## It first installs what the emulated-CPU and browser tests need when it can (root with apt-get);
## where it cannot, those tests are skipped with one line each (under CI=true they fail).
WORKERS ?= 2
PARALLEL := -n $(WORKERS) --dist loadscope --no-loadscope-reorder
test: $(STAMP)
	@bash tools/ensure_qemu.sh
	@bash tools/ensure_browser.sh
	$(BIN)/python -m pytest $(PARALLEL) --durations=10

## The everyday lane: unit tests only (no TensorFlow subprocesses, notebooks, book or browser),
## on the two pytest workers.
FAST := -m "not slow and not book and not browser"
test-fast: $(STAMP)
	$(BIN)/python -m pytest $(PARALLEL) $(FAST) --durations=10 tests/

## One chapter after a change to it: its exact-output gate outside the checkout, its static
## checks, and the fast lane (make test-chapter N=7).
test-chapter: $(STAMP)
	@test -n "$(N)" || { echo "usage: make test-chapter N=7"; exit 2; }
	$(BIN)/python -m pytest $(PARALLEL) --durations=10 \
	  $(wildcard chapters/$(shell printf %02d $(N))_*.ipynb) \
	  tests/test_gate.py tests/test_outside.py -k "$(shell printf %02d $(N))_ or not chapter" \
	  && $(MAKE) --no-print-directory test-fast

## One module after a change to it: its mirror test file, slow tests included (make test-module M=lanes).
test-module: $(STAMP)
	@test -f "tests/test_$(M).py" || { echo "usage: make test-module M=name (tests/test_name.py)"; exit 2; }
	$(BIN)/python -m pytest --durations=10 tests/test_$(M).py

## Measure the whole suite as make test runs it, then the fast lane as make test-fast runs it;
## rewrite the committed durations records (and the workshop timetables that quote the first);
## the JUnit XML and a per-test timeline (worker, start, end, CPU seconds) stay in _build/durations.
durations: $(STAMP)
	@bash tools/ensure_qemu.sh
	@bash tools/ensure_browser.sh
	$(BIN)/python tools/suite_durations.py --out benchmarks/results/suite_durations.json --keep _build/durations -- $(PARALLEL)
	$(BIN)/python tools/workshop_timetable.py  # the workshop's run times come from that record
	$(BIN)/python tools/suite_durations.py --out benchmarks/results/fast_lane_durations.json -- $(PARALLEL) $(FAST) tests/

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

## The cache-geometry sweep: build the emulator that presents any L1d/L2 (tools/cache_qemu, needs
## root and apt-get; cached outside the checkout), re-run the records of cross_cpu_caches/.
SWEPT := softmax-small,mlp-small,mlp-fit-small,cnn-small,lstm
cache-sweep: $(STAMP)
	bash tools/cache_qemu/build.sh
	$(BIN)/python -m reprodl crosscheck --no-native --emulate Icelake-Server --caches sweep --cases $(SWEPT) --out src/reprodl/results/cross_cpu_caches
	$(BIN)/python -m reprodl crosscheck --no-native --emulate Icelake-Server --caches 32/512,48/2048 --cases lstm-keras-init --out src/reprodl/results/cross_cpu_caches

## Workshop material (chapters/workshop.md), from the chapters, which are read, never written:
## exercise notebooks without the solutions into _build/exercises/, and reveal.js slides from the
## cells tagged `slide` into _build/slides/ (python tools/make_slides.py --tag NAME for another).
.PHONY: exercises slides
exercises: $(STAMP)
	$(BIN)/python tools/make_exercises.py --out _build/exercises chapters/*.ipynb

slides: $(STAMP)
	$(BIN)/python tools/make_slides.py --out _build/slides chapters/*.ipynb

clean:
	rm -rf _build

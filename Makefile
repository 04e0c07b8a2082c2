# edgelm: `make demo` sets up .venv and runs the main job; `make test` sets up .venv and runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgelm-installed
# torch first, pinned to the CPU build that lies on these machines' disk: a bare `torch` requirement
# with no torch installed would pull a multi-GB CUDA build. It stays pinned in every later install.
TORCH := torch==2.13.0

.PHONY: setup demo test clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[all]" $(TORCH)
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/edgelm teacher pull e5-small
	$(BIN)/edgelm eval e5-small --out runs/teacher-eval.json

test: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

clean-venv:
	rm -rf $(VENV)

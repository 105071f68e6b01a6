# Set-up and everyday commands. `make demo` and `make test` each create .venv when missing.
#
# TORCH pins the CPU wheel that lies on these build machines; on a machine with a GPU use
#   make TORCH=torch demo
# to let pip pick the CUDA build allowed by pyproject.toml's range.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stagetune-installed
PACKAGES := search spaces objectives storage
LINTED := stagetune $(PACKAGES) tests $(wildcard benchmarks examples)
# mypy cannot follow the editable install's name mapping (stagetune.search -> search/),
# so it checks a tree of links laid out as the wheel installs the package.
TYPECHECK_TREE := build/typecheck/stagetune

.PHONY: venv demo test lint typecheck pytest clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

demo: venv
	$(BIN)/stagetune run --task digits-mlp --name demo

lint: venv
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

typecheck: venv
	rm -rf $(TYPECHECK_TREE) && mkdir -p $(TYPECHECK_TREE)
	ln -s $(CURDIR)/stagetune/* $(TYPECHECK_TREE)/
	for p in $(PACKAGES); do ln -s $(CURDIR)/$$p $(TYPECHECK_TREE)/$$p; done
	$(BIN)/mypy

pytest: venv
	$(BIN)/python -m pytest

test: lint typecheck pytest

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache

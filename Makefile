# medstack: two commands do all the set-up (see README.md).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: all venv demo test lint bench clean

all: test

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -e ".[test]"
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/medstack-demo --outdir demo

test: venv
	$(VENV)/bin/ruff check src tests $(wildcard benchmarks)
	$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff check src tests $(wildcard benchmarks)

bench: venv
	$(MAKE) -C benchmarks bench

clean:
	rm -rf $(VENV) demo build dist src/*.egg-info .pytest_cache .hypothesis

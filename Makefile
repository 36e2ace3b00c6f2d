# medstack: two commands do all the set-up (see README.md).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
# Optional extras installed with the package: the test tools, drizzlepac for the AstroDrizzle
# tests (tests/test_astrodrizzle.py) and stcal, jwst and romancal for the JWST/Roman tests
# (tests/test_stcal*.py, tests/test_jwst*.py); those tests skip without their packages:
# `make test EXTRAS=test` leaves both out.
EXTRAS ?= test,drizzlepac,pipelines
comma  := ,
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: all venv demo test lint bench clean

all: test

# The compiled kernels: built by the install (setup.py), rebuilt when their source changes.
KSRC   := src/medstack/kernels/_fast.c src/medstack/kernels/_build.py
KSTAMP := $(VENV)/.kernels

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -e ".[$(EXTRAS)]"
	$(VENV)/bin/medstack-compile
	touch $@ $(KSTAMP)

$(KSTAMP): $(KSRC) | $(STAMP)
	$(VENV)/bin/medstack-compile --force
	touch $@

venv: $(STAMP) $(KSTAMP)

demo: venv
	$(VENV)/bin/medstack-demo --outdir demo

test: lint
	$(PY) -m pytest -q

# ruff, and mypy on src/medstack (pyproject.toml's [tool.mypy])
lint: venv
	$(VENV)/bin/ruff check src tests $(wildcard benchmarks)
	$(VENV)/bin/mypy

bench: venv
	$(MAKE) -C benchmarks bench

clean:
	rm -rf $(VENV) demo build dist src/*.egg-info .pytest_cache .hypothesis

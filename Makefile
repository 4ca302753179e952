# Everything runs in a local virtualenv; torch is pinned to the CPU wheel this machine ships
# (a bare `torch` would pull a multi-GB CUDA build).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
TORCH ?= torch==2.13.0

.PHONY: venv install test fuzz demo bench clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

venv: $(PY)

# Non-editable on purpose (docs/architecture.md §5); the last line makes sure tests see this tree's source.
install: venv
	$(PIP) install -q "$(TORCH)"
	rm -rf build  # setuptools reuses build/ and would ship package data files deleted from src/
	$(PIP) install -q ".[test]"
	$(PIP) install -q --force-reinstall --no-deps .

test: install
	$(PY) -m pytest -q tests

# The property-based engine tests with a long example budget and random seeds (make test runs a short, fixed one).
fuzz: install
	$(PY) -m pytest -q tests/brunoflow/test_fuzz.py --hypothesis-profile=fuzz

demo: install
	$(PY) -m bf_bert.demo

bench: install
	$(PY) benchmarks/engine.py

clean:
	rm -rf build *.egg-info src/*.egg-info

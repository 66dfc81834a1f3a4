# Set-up and entry points. `make demo` and `make test` work on a fresh machine with Python >= 3.11.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -c constraints.txt -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/connecto demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -rap  # -rap: the summary names every test that passed (no captured output)

bench: $(STAMP)
	$(BIN)/python benchmarks/engine.py --json bench-results/engine.json

clean:
	rm -rf $(VENV) demo-output

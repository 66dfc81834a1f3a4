# Set-up and entry points. `make demo` and `make test` work on a fresh machine with Python >= 3.11.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup browser demo test bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -c constraints.txt -e ".[test]"
	touch $(STAMP)

setup: $(STAMP) browser

# the viewer test's browser: Debian's chromium, installed with apt (as root, or with sudo -n) when missing
browser:
	@if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1; then \
	    SUDO=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); \
	    echo "installing Debian's chromium for the viewer test (apt-get install chromium)"; \
	    { $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	      >/dev/null; } || echo "could not install chromium: the viewer test needs it (apt-get install chromium)"; \
	  else \
	    echo "chromium not found and no apt-get: install it (or set CONNECTO_CHROMIUM) for the viewer test"; \
	  fi; \
	fi

demo: $(STAMP)
	$(BIN)/connecto demo

test: $(STAMP) browser
	$(BIN)/python -m pytest -q -rap  # -rap: the summary names every test that passed (no captured output)

bench: $(STAMP)
	$(BIN)/python benchmarks/engine.py --json bench-results/engine.json

clean:
	rm -rf $(VENV) demo-output

# `make demo` and `make test` work on a fresh machine with Python 3.11: they create .venv when needed.
# The demo installs only what the quickstart needs; the tests add the dev extra (every SDK, moto, ...).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --quiet --disable-pip-version-check
RUNTIME := $(VENV)/.runtime-stamp
DEV := $(VENV)/.dev-stamp
LOCAL := $(VENV)/.local-stamp

.PHONY: setup demo demo-emulator test lint clean

setup: $(DEV)

$(RUNTIME): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[openai]'
	touch $(RUNTIME)

$(DEV): $(RUNTIME)
	$(PIP) -e '.[openai,dev]'
	touch $(DEV)

$(LOCAL): $(RUNTIME)
	$(PIP) -e '.[openai,local]'
	touch $(LOCAL)

# trains a tiny model for real on the CPU (provider: local); no keys, no GPU, no download
demo: $(LOCAL)
	$(BIN)/loraflow run examples/quickstart-local/pipeline.yaml

# the same task through the OpenAI adapter and the loopback emulator
demo-emulator: $(RUNTIME)
	$(BIN)/loraflow run examples/quickstart/pipeline.yaml

test: $(DEV)
	# two workers, one test file each at a time: module fixtures (a prefect server) stay in one process
	$(BIN)/pytest -n 2 --dist loadfile

# ruff (line length 110 and import order enforced) and the import contracts of pyproject.toml
lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) runs .pytest_cache

# `make demo` and `make test` work on a fresh machine with Python 3.11: they create .venv when needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[openai,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/loraflow run examples/quickstart/pipeline.yaml

test: $(STAMP)
	# two workers, one test file each at a time: module fixtures (a prefect server) stay in one process
	$(BIN)/pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) runs .pytest_cache

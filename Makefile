# `make demo` and `make test` work on a fresh machine with Python 3.11: they create .venv when needed.
# The demo installs only what the quickstart needs; the tests add the dev extra (every SDK, moto, ...).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --quiet --disable-pip-version-check
# torch: PyPI's Linux wheel of the pinned version is the CUDA build (it pulls nvidia-* packages, several GB).
# Without an NVIDIA GPU (no nvidia-smi) and with PyTorch's CPU index reachable, that index is added, so the
# same pin resolves to 2.13.0+cpu (~190 MB). TORCH_INDEX=<url> picks another index (e.g. .../whl/cu128);
# TORCH_INDEX=none keeps PyPI's wheel. A machine that can reach neither gets torch from its own pip config.
TORCH_INDEX ?= $(if $(shell command -v nvidia-smi 2>/dev/null),none,https://download.pytorch.org/whl/cpu)
torch_index = $(if $(filter none,$(TORCH_INDEX)),,$(if $(shell curl -sfI -m 5 $(TORCH_INDEX)/ >/dev/null 2>&1 \
	&& echo up),--extra-index-url $(TORCH_INDEX)))
RUNTIME := $(VENV)/.runtime-stamp
DEV := $(VENV)/.dev-stamp
LOCAL := $(VENV)/.local-stamp

.PHONY: setup demo demo-emulator ui test lint clean

setup: $(DEV)

$(RUNTIME): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing loraflow, Prefect and the OpenAI SDK into $(VENV) (about a minute on a fresh machine)"
	$(PIP) -e '.[openai]'
	touch $(RUNTIME)

$(DEV): $(RUNTIME)
	@echo "installing the test tools, every provider SDK and torch (a few minutes on a fresh machine)"
	$(PIP) $(torch_index) -e '.[openai,dev]'
	touch $(DEV)

$(LOCAL): $(RUNTIME)
	@echo "installing torch, transformers and peft for the local trainer (a minute or two on a fresh machine)"
	$(PIP) $(torch_index) -e '.[openai,local]'
	touch $(LOCAL)

# trains a tiny model for real on the CPU (provider: local); no keys, no GPU, no download
demo: $(LOCAL)
	$(BIN)/loraflow run examples/quickstart-local/pipeline.yaml

# the same task through the OpenAI adapter and the loopback emulator
demo-emulator: $(RUNTIME)
	$(BIN)/loraflow run examples/quickstart/pipeline.yaml

# the Prefect dashboard on http://127.0.0.1:4200 with the deployments and a worker (Ctrl-C stops all)
ui: $(RUNTIME)
	$(BIN)/loraflow ui

test: $(DEV)
	# two workers, one test file each at a time: module fixtures (a prefect server) stay in one process
	$(BIN)/pytest -n 2 --dist loadfile

# ruff (line length 110 and import order enforced) and the import contracts of pyproject.toml
lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) runs .pytest_cache

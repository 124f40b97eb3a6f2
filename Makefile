# Two commands do all the set-up: `make demo` (the main job) and `make test` (the whole suite).
# Both create or refresh .venv and install the project with its pinned dependencies first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/modalrec demo

test: $(STAMP)
	$(PY) -m mypy modalrec
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) modalrec-demo .pytest_cache

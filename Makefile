# Two commands do all the set-up: `make demo` (the main job) and `make test` (the whole suite).
# Both create or refresh .venv and install the project with its pinned dependencies first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test docs bench-demo bench clean

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
	$(MAKE) --no-print-directory docs

# The documentation site in site/, built strictly: a broken link, anchor or API reference fails it.
# docs/gen_reference.py writes the model and CLI reference pages during the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(VENV)/bin/mkdocs build --strict --quiet

# The demo benchmark behind docs/benchmarks/demo.md: three models, three seeds (about 15 CPU-minutes).
bench-demo: $(STAMP)
	$(PY) -c 'import modalrec; modalrec.load_dataset("demo")'
	$(VENV)/bin/modalrec benchmark --data modalrec-demo/data/shop --models bpr,lightgcn,vbpr --seeds 3 \
		--out modalrec-demo/benchmark --set progress=false
	cp modalrec-demo/benchmark/results.md modalrec-demo/benchmark/results.csv \
		modalrec-demo/benchmark/runs.csv modalrec-demo/benchmark/results.png docs/benchmarks/demo/

clean:
	rm -rf $(VENV) modalrec-demo .pytest_cache site

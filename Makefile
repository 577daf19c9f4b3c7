# Two commands for a new user: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint install bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, pinned: here it is the CPU build on disk; a bare `torch` would pull GB of CUDA wheels.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m medviewer demo

lint: $(STAMP)
	$(VENV)/bin/ruff check medviewer tests benchmarks scripts
	$(VENV)/bin/lint-imports

test: lint
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/bench_load.py
	$(PY) benchmarks/bench_render.py
	$(PY) benchmarks/bench_infer.py --quick  # the full run (512x512x300) takes ~12 min on 2 cores

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

# Two commands for a new user: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint install bench clean dist package package-test pacs-tools

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

# mypy reads [tool.mypy] in pyproject.toml and caches in .mypy_cache (seconds once warm).
lint: $(STAMP)
	$(VENV)/bin/ruff check medviewer tests benchmarks scripts packaging
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

test: lint pacs-tools
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

# The PACS tests (tests/net) run a real Orthanc and cross-check with dcmtk: installed here when
# missing (apt-get, as root), else the exact command to run is printed.
PACS_PACKAGES := orthanc orthanc-dicomweb dcmtk openssl
pacs-tools:
	@if [ -x /usr/sbin/Orthanc ] && [ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] \
	    && command -v getscu >/dev/null && command -v openssl >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing $(PACS_PACKAGES) for the PACS tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $(PACS_PACKAGES) >/dev/null; \
	else \
	  echo "The PACS tests need Orthanc and dcmtk: run sudo apt-get install -y $(PACS_PACKAGES)"; \
	  exit 1; \
	fi

bench: $(STAMP)
	$(PY) benchmarks/bench_load.py
	$(PY) benchmarks/bench_render.py
	$(PY) benchmarks/bench_infer.py --quick  # the full run (512x512x300) takes ~12 min on 2 cores
	$(PY) benchmarks/bench_responsiveness.py  # ~2 min on 2 cores (a demo CT segmentation)

# -- packaging (packaging/README.md) -------------------------------------------------------
# A separate venv holds only what the bundle ships (no test tools), with medviewer installed
# from its wheel. TORCH is pip's arguments for torch. Here `torch==2.13.0` is the CPU build
# (pip's configured wheel folder has it); from PyPI on Linux it would be the CUDA build, so
# elsewhere say which one:
#   make package TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
#   make package TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
# A changed TORCH reinstalls torch (pip alone would keep 2.13.0+cpu for ==2.13.0).
PKG_VENV := build/package-venv
PKG_PY := $(PKG_VENV)/bin/python
TORCH ?= torch==2.13.0
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' medviewer/__init__.py)
WHEEL := dist/medviewer-$(VERSION)-py3-none-any.whl
BUNDLE_TAR := dist/medviewer-$(VERSION)-linux-x86_64.tar.gz

$(PKG_PY):
	$(PYTHON) -m venv $(PKG_VENV)

# The wheel and the sdist (python -m build).
dist: | $(PKG_PY)
	$(PKG_PY) -m pip install -q build
	rm -rf build/lib build/bdist.* dist/medviewer-$(VERSION)*.whl dist/medviewer-$(VERSION).tar.gz
	$(PKG_PY) -m build --outdir dist .

# The one-folder desktop bundle dist/medviewer/ and its archive (PyInstaller).
package: dist
	@if [ "$$(cat $(PKG_VENV)/.torch 2>/dev/null)" != '$(TORCH)' ]; then \
		echo "installing torch: $(TORCH)"; \
		$(PKG_PY) -m pip install -q --force-reinstall $(TORCH) && echo '$(TORCH)' > $(PKG_VENV)/.torch; \
	fi
	$(PKG_PY) -m pip install -q "pyinstaller==6.22.3" "pyinstaller-hooks-contrib==2026.9"
	$(PKG_PY) -m pip install -q $(WHEEL)
	$(PKG_PY) -m pip install -q --force-reinstall --no-deps $(WHEEL)
	$(PKG_PY) -m PyInstaller --noconfirm --clean --log-level WARN \
		--distpath dist --workpath build/pyinstaller packaging/pyinstaller/medviewer.spec
	tar -C dist -czf $(BUNDLE_TAR) medviewer

# Install the wheel in a fresh venv and run both it and the bundle (packaging/verify.py).
package-test: package
	$(PYTHON) packaging/verify.py --wheel $(WHEEL) --bundle dist/medviewer --torch "$(TORCH)"

clean:
	rm -rf --one-file-system $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache

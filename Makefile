# The two commands of the README: `make book` and `make test` (plus `make check-site` for CI).
SHELL := /bin/bash
# A Python 3.11 or 3.12 (pyproject's requires-python): the first found of python3.12, python3.11, python3.
PYTHON ?= $(shell for p in python3.12 python3.11 python3; do \
  command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))' \
  2>/dev/null && { echo $$p; break; }; done)
# PyTorch's own wheel index for a GPU whose driver is older than the default build needs (README, "GPU"), e.g.
# make test TORCH_INDEX=https://download.pytorch.org/whl/cu126 ; empty: torch from PyPI like every other package.
TORCH_INDEX ?=
VENV ?= .venv
PY := $(VENV)/bin/python
JB := $(VENV)/bin/jupyter-book
CHROMIUM ?= /usr/bin/chromium

.PHONY: book book-student test test-fast rehearse check-site chromium vendor clean venv-book venv-test

$(PY):
	@test -n "$(PYTHON)" || { echo "make: no Python 3.11 or 3.12 found (python3.12, python3.11 and python3 tried)."; \
	  echo "  Install one (Debian/Ubuntu: apt install python3.12 python3.12-venv; or uv python install 3.12)"; \
	  echo "  and run make again, or name it: make PYTHON=/path/to/python3.12"; exit 1; }
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { echo "make: $(PYTHON) has no venv support."; \
	  echo "  Debian/Ubuntu: apt install python3-venv (or python3.12-venv for that version)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# One stamp per extra, redone when pyproject.toml changes. With TORCH_INDEX, torch and torchvision (at pyproject's
# pins) come from that index first; the extra's install then finds them satisfied.
$(VENV)/.installed-%: pyproject.toml | $(PY)
	$(if $(TORCH_INDEX),$(PY) -m pip install --quiet --index-url $(TORCH_INDEX) \
	  $$(grep -oE '"torch(vision)?==[^"]+"' pyproject.toml | tr -d '"'))
	$(PY) -m pip install --quiet -e ".[$*]"
	touch $@

venv-book: $(VENV)/.installed-book
venv-test: $(VENV)/.installed-test

vendor: $(VENV)/.installed-book
	$(PY) scripts/vendor_web_assets.py _vendor

# Clean build with execution: stale cached outputs can never be published; -W turns any notebook
# error or Sphinx warning into a failure. Progress bars are for interactive use, not the book.
book: $(VENV)/.installed-book vendor
	$(JB) clean --all .
	TQDM_DISABLE=1 PATH="$(abspath $(VENV))/bin:$$PATH" $(JB) build -W -n --keep-going .
	@echo "Book: _build/html/index.html"

# The student edition: the same book without exercise solutions (and without page sources), in _build/student.
book-student: $(VENV)/.installed-book vendor
	rm -rf _build/student
	GRADLIME_EDITION=student TQDM_DISABLE=1 PATH="$(abspath $(VENV))/bin:$$PATH" \
	  $(JB) build -W -n --keep-going --path-output _build/student .
	@echo "Student edition: _build/student/_build/html/index.html"

test: $(VENV)/.installed-test $(VENV)/.installed-book  # the book extra: the student-edition test builds a small book
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest

# The paper profile of every chapter, on the CPU, against tiny fixtures in the real layouts (book/reproducing.md).
# DEVICE=cuda rehearses on a GPU, each chapter twice, and lists any result that differs between the two runs.
DEVICE ?= cpu
rehearse: $(VENV)/.installed-book
	TQDM_DISABLE=1 PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m gradlime_utils.rehearse --out _build/rehearsal \
	  --device $(DEVICE) $(if $(filter cuda,$(DEVICE)),--twice)

# The unit tests without chapter runs, book builds and trainings (tests marked slow): a few minutes.
test-fast: $(VENV)/.installed-test
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest -m "not slow"

$(CHROMIUM):
	@echo "Installing Debian's chromium for the site check"
	if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null

# The browser for the site check and its tests (CI installs it before `make test`, so they run there too).
chromium: $(CHROMIUM)

check-site: $(VENV)/.installed-book $(CHROMIUM)
	@test -f _build/html/index.html || { echo "no built book: run make book first"; exit 1; }
	$(PY) scripts/check_site.py _build/html --chromium $(CHROMIUM) --screenshots _build/site-check

clean:
	rm -rf _build outputs .pytest_cache

# The two commands of the README: `make book` and `make test` (plus `make check-site` for CI).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
JB := $(VENV)/bin/jupyter-book
CHROMIUM ?= /usr/bin/chromium

.PHONY: book book-student test test-fast rehearse check-site vendor clean venv-book venv-test

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# One stamp per extra, redone when pyproject.toml changes.
$(VENV)/.installed-%: pyproject.toml | $(PY)
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
rehearse: $(VENV)/.installed-book
	TQDM_DISABLE=1 PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m gradlime_utils.rehearse --out _build/rehearsal

# The unit tests without chapter runs, book builds and trainings (tests marked slow): a few minutes.
test-fast: $(VENV)/.installed-test
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest -m "not slow"

$(CHROMIUM):
	@echo "Installing Debian's chromium for the site check"
	if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null

check-site: $(VENV)/.installed-book $(CHROMIUM)
	@test -f _build/html/index.html || { echo "no built book: run make book first"; exit 1; }
	$(PY) scripts/check_site.py _build/html --chromium $(CHROMIUM) --screenshots _build/site-check

clean:
	rm -rf _build outputs .pytest_cache

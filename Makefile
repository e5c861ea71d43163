# Two commands on a fresh machine:
#   make run    set up .venv, then `convscope run` (bundled MNIST sample, offline)
#   make test   the same set-up, Debian's chromium for the browser test, then pytest
#               (extra arguments: make test PYTEST_ARGS='-m "not slow"')
#
# The environment is installed once and again only when pyproject.toml changes:
# .venv/.installed is the stamp. Source edits need nothing (editable install).

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test setup browser

run: setup
	$(VENV)/bin/convscope run

test: setup browser
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[dev]"
	touch $@

# The report's browser test drives Chromium; without it that test is skipped.
browser:
	@if command -v chromium >/dev/null 2>&1 || [ -n "$$CONVSCOPE_CHROMIUM" ]; then \
		:; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "make: no chromium and no apt-get here: the browser test will be skipped"; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "make: installing Debian's chromium for the browser test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	elif sudo -n true 2>/dev/null; then \
		echo "make: installing Debian's chromium for the browser test"; \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "make: no chromium, and installing it needs root: the browser test will be skipped"; \
	fi

# Two commands do all the set-up: `make run` (the product) and `make test` (the checks).
# Each creates the virtual environment it needs in .venv with Python 3.11 or newer.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# `make run PORT=8502` (or `make demo PORT=8502`) serves the dashboard on another port than 8501.
UP_OPTIONS = $(if $(PORT),--port $(PORT))

.PHONY: run demo install install-dev test lint bench clean

run: install
	@test -f .env || cp .env.example .env
	$(BIN)/python -m agent_core up $(UP_OPTIONS)

demo: install
	@test -f .env || cp .env.example .env
	$(BIN)/python -m agent_core up --demo $(UP_OPTIONS)

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

$(VENV)/.installed: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "agent runtime needs Python 3.11 or newer: set PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt examples/shipping_rates/pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

test: install-dev lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

bench: install-dev
	$(BIN)/python -m pip install --quiet -r requirements-bench.txt
	PYTHONPATH=. $(BIN)/python bench/step_overhead.py
	PYTHONPATH=. $(BIN)/python bench/worker_throughput.py
	PYTHONPATH=. $(BIN)/python bench/ledger.py
	PYTHONPATH=. $(BIN)/python bench/cli_startup.py
	PYTHONPATH=. $(BIN)/python bench/dashboard_scale.py

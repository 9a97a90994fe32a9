# Developer shortcuts; run inside the project's virtual environment (see README.md).
PYTHON ?= python
PYTEST_WORKERS ?= 2
SPHINXOPTS ?= -W --keep-going
DOCS_OUT ?= docs/_build/html

.PHONY: lint format test test-slow docs

lint:  ## ruff lint and format check (what CI runs)
	ruff check .
	ruff format --check .

format:  ## apply ruff's fixes and formatting
	ruff check --fix .
	ruff format .

test:  ## the default test suite
	$(PYTHON) -m pytest -n $(PYTEST_WORKERS)

test-slow:  ## only the slow statistical tests
	$(PYTHON) -m pytest -n $(PYTEST_WORKERS) -m slow

docs:  ## strict, offline Sphinx build (warnings are errors)
	$(PYTHON) -m sphinx $(SPHINXOPTS) -b html docs $(DOCS_OUT)

# airflow-provider-cronium: the two commands a new user runs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RECORDS ?= dags_templates/records

.PHONY: demo test venv system lint pytest bench docs clean

# A local Airflow (SQLite, LocalExecutor, web UI on 127.0.0.1:8080 or DEMO_PORT) in ./airflow_home running the
# example records, with what their examples deliver to on 127.0.0.80 (an sshd, a mail catcher, a webhook
# receiver, an HTTP endpoint: docs/demo.md); the example workflow is run once and its nodes' states and outputs
# printed. Everything keeps running until `make demo-stop`; a second `make demo` reuses it and triggers a new run.
demo: venv system
	@echo "== Validating the example Cronium records in $(RECORDS)"
	$(BIN)/cronium-airflow validate $(RECORDS)
	@echo "== The Airflow DAGs they build"
	$(BIN)/cronium-airflow plan $(RECORDS)
	VENV=$(abspath $(VENV)) DEMO_RECORDS=$(RECORDS) bash scripts/demo.sh

.PHONY: demo-stop
demo-stop:
	bash scripts/demo-stop.sh

test: venv system lint pytest

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,demo]'
	touch $(STAMP)

venv: $(STAMP)

system:
	bash scripts/install-system.sh

# ruff, mypy --strict, and the import contracts of pyproject.toml (the layers of docs/architecture.md).
lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy cronium_provider
	$(BIN)/lint-imports --no-cache

# The smoke tests run first and print what they reached (real Docker, a real sshd); then everything else.
pytest: venv
	$(BIN)/python -m pytest -q -s tests/test_smoke_components.py
	$(BIN)/python -m pytest --ignore=tests/test_smoke_components.py

bench: venv system
	$(BIN)/python bench/run_all.py

# The docs site from docs/ (Sphinx, MyST Markdown, furo) into docs/_build/html; any warning fails the build
# (tests/test_docs.py runs the same build in `make test`).
docs: venv
	$(BIN)/sphinx-build -W --keep-going -n -b html docs docs/_build/html

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache docs/_build

# Two entry points: `make run` (the demo) and `make test` (lint, types, tests).
# Each creates .venv and installs what it needs, so both work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run run-uvicorn test lint typecheck pytest clean

$(STAMP): pyproject.toml package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@if command -v npm >/dev/null 2>&1 && [ -f package.json ]; then npm ci --no-audit --no-fund --silent; fi
	touch $(STAMP)

# The demo through the Lambda event path, with an embedded DynamoDB-compatible server.
run: $(STAMP)
	$(BIN)/asgi-lambda watch demo_app.main:handler --dynamodb embedded --port 8000

# The same app under plain uvicorn, rate limits in memory.
run-uvicorn: $(STAMP)
	$(BIN)/uvicorn demo_app.main:app --host 127.0.0.1 --port 8000

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache

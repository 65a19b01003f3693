# Two entry points: `make demo` runs the welcome journey, `make test` runs the checks.
# Both bootstrap their own environment from uv.lock; GNU make and Python 3.10+ are all
# they need.

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
STAMP := $(VENV)/.synced-from-lock

export UV_PYTHON := $(shell $(PYTHON) -c 'import sys; print(sys.executable)')
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: demo test test-e2e lint bench venv clean

venv: $(STAMP)

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(STAMP): uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --all-extras
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/python scripts/demo.py

lint: $(STAMP)
	$(VENV)/bin/ruff check airflow_provider_journey tests dags scripts bench
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest

# Benchmarks report figures and never fail on a slow machine; they are not part of
# `make test`. nginx comes from Debian's packages and listens on 127.0.0.1 only.
bench: $(STAMP)
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y nginx-light; }
	$(VENV)/bin/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf .demo $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache

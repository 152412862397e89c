# Genesis: `make run` sets everything up and serves http://127.0.0.1:8000/; `make test` runs the suite.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO ?= 1

.PHONY: install run migrate test test-sqlite test-postgres lint check bench bench-api clean browser screenshots

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed ($(PYTHON) not found)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

migrate: install
	@mkdir -p var
	$(PY) manage.py migrate --noinput

run: migrate
	$(PY) manage.py ensure_admin
	@if [ "$(DEMO)" != "0" ]; then HOST=$(HOST) PORT=$(PORT) $(PY) manage.py start_demo; fi
	$(PY) manage.py load_blueprint --shipped
	@echo "Genesis: http://$(HOST):$(PORT)/admin/ (web server and worker cluster; Ctrl-C stops both)"
	HOST=$(HOST) PORT=$(PORT) $(VENV)/bin/honcho start -f Procfile

test: install
	@test -x $(CHROMIUM) || echo "NOTE: no Chromium at $(CHROMIUM): the browser tests are skipped (make browser installs it)."
	$(PY) -m pytest $(PYTEST_ARGS)

# The page tests drive Debian's Chromium through Playwright (never a downloaded browser).
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { echo "Installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	@$(CHROMIUM) --version

# Refresh docs/screenshots/ from the browser tests.
screenshots: install browser
	GENESIS_SCREENSHOTS=1 $(PY) -m pytest tests/missions/web/test_browser.py tests/missions/web/test_browser_lineage.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy .

check: install
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

clean:
	rm -rf $(VENV) var

bench: install
	$(PY) -m bench.engine $(BENCH_ARGS)

# The REST API under load: PostgreSQL with 1,000 missions / 100,000 tasks, gunicorn, wrk (docs/benchmarks.md).
bench-api: install
	$(PY) -m bench.api $(BENCH_ARGS)

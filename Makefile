# CRM Portal — `make run` serves the demo, `make test` runs the suite. Both set themselves up.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORTAL := $(VENV)/bin/crm-portal
HOST ?= 127.0.0.1
PORT ?= 5000
CATALOGS := crm_portal/translations crm_portal/account/translations $(wildcard modules/*/translations)

.PHONY: run test lint venv translations extract-messages bench bench-quick clean

venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,postgres,prod]'
	touch $@

translations: venv
	@for dir in $(CATALOGS); do $(VENV)/bin/pybabel compile --statistics -d $$dir || exit 1; done
	@$(VENV)/bin/pybabel compile --statistics -D admin -d crm_portal/translations

# The background worker (email delivery, periodic jobs) runs beside the development server and
# stops with it; emails are written as .eml files to instance/mail. Links in them point at
# EXTERNAL_URL: this server's address unless CRM_PORTAL_EXTERNAL_URL says otherwise. The demo
# data brings the staff admin (password "demo"), so init creates none.
run: translations
	@export CRM_PORTAL_EXTERNAL_URL="$${CRM_PORTAL_EXTERNAL_URL:-http://$(HOST):$(PORT)}"; \
	test -f instance/crm_portal.db || { $(PORTAL) init --no-admin --external-url "$$CRM_PORTAL_EXTERNAL_URL" && $(PORTAL) demo; } || exit 1; \
	echo "CRM Portal on http://$(HOST):$(PORT)/ — demo logins: anna@acme.example, bruno@acme.example, carla@globex.example (password: demo); staff at /admin/ as admin@example.com (demo)"; \
	echo "Emails are written to $(CURDIR)/instance/mail/ (links to $$CRM_PORTAL_EXTERNAL_URL); worker log: instance/worker.log"; \
	$(PORTAL) worker > instance/worker.log 2>&1 & worker=$$!; \
	trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	$(PORTAL) run --host $(HOST) --port $(PORT)

# SQLite always; PostgreSQL too when CRM_PORTAL_TEST_DATABASE_URL names a server (CI sets it).
# The browser tests run in the first pass only: what they check (layout, scripts, accessibility,
# journeys) is the same page on either database, and every database path has its own test.
# Tests run in TEST_WORKERS processes (pytest-xdist; a file's tests stay in one process), each on
# its own SQLite files or its own PostgreSQL database (<name>_gw0, <name>_gw1 …).
TEST_WORKERS ?= auto
test: translations
	CRM_PORTAL_TEST_DATABASE_URL= $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)
	@if [ -n "$$CRM_PORTAL_TEST_DATABASE_URL" ]; then \
		echo "== again on $$CRM_PORTAL_TEST_DATABASE_URL (browser tests excepted)"; \
		$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not browser" $(PYTEST_ARGS); \
	fi

# The linter over the whole tree and the type check of the public API (configured in pyproject.toml).
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# Extract new strings and merge them into the host catalogue (translate, then commit the .po).
extract-messages: venv
	$(VENV)/bin/pybabel extract -F babel.cfg -k _l -o crm_portal/translations/messages.pot crm_portal
	$(VENV)/bin/pybabel update -i crm_portal/translations/messages.pot -d crm_portal/translations --no-fuzzy-matching

# The benchmarks (bench/): page ratios against the bare-SQL limit and Flask-Admin (in one process),
# the list's throughput under gunicorn and wrk, and the older absolute timings. On PostgreSQL too
# when CRM_PORTAL_BENCH_PG names a server (e.g. postgresql://127.0.0.1:5432/bench_ratio).
bench: translations
	$(PY) bench/ratios.py $(BENCH_ARGS)
	$(PY) bench/throughput.py
	$(PY) bench/tickets.py
	$(PY) bench/outbox.py

# A quick run of the ratios benchmark (20,000 and 2,000 tickets) to see that it works.
bench-quick: translations
	$(PY) bench/ratios.py --quick

clean:
	rm -rf $(VENV) build dist *.egg-info

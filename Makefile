# One entry point for people and CI. `make run` and `make test` are all a newcomer needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY := .venv/bin/python
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RUN_ENV := DJANGO_DEBUG=true
DEMO_ARGS ?= --clinics 40 --days 14 --seed 1
PYTEST_ARGS ?=

.PHONY: help install run test lint format messages compilemessages migrations-check services browser bench audit clean

help:
	@echo "make run     the product with demo data on http://127.0.0.1:8000/"
	@echo "make test    every test, on PostgreSQL and Redis"
	@echo "make lint | messages | migrations-check | bench"
	@echo "make audit   known vulnerabilities in the locked dependencies (needs network; docs/security.md)"

.venv/.installed: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install -q uv
	$(UV) sync --frozen --quiet
	@touch $@

install: .venv/.installed compilemessages

compilemessages: .venv/.installed
	@command -v msgfmt >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq gettext >/dev/null; } || { echo "Install gettext (msgfmt) to compile translations."; exit 1; }
	@$(RUN_ENV) $(PY) manage.py compilemessages --ignore=.venv -v 0

run: install
	@mkdir -p var
	$(RUN_ENV) $(PY) manage.py migrate --no-input -v 0
	$(RUN_ENV) $(PY) manage.py seed_demo $(DEMO_ARGS) --if-empty
	@echo "Demo health-insurance cards to identify with (demo data only):"
	@$(RUN_ENV) $(PY) manage.py demo_citizens
	$(RUN_ENV) $(PY) manage.py runserver 127.0.0.1:8000

services:
	@bash .ci/services.sh

browser:
	@bash .ci/browser.sh

test: install services browser
	$(PY) -m pytest $(PYTEST_ARGS)

lint: .venv/.installed
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy booking citizens clinics config sync

format: .venv/.installed
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

messages: .venv/.installed
	$(RUN_ENV) $(PY) manage.py makemessages -l fr -l en --ignore=.venv --ignore=var --ignore=tests --no-obsolete

migrations-check: .venv/.installed
	$(RUN_ENV) $(PY) manage.py makemigrations --check --dry-run

bench: install services
	@bash bench/run.sh

# Known vulnerabilities in every locked package (uv.lock, all groups), from PyPI's advisory database.
# On demand, not in `make test`: it needs the network. --strict: a package it could not check fails
# the audit instead of being skipped quietly.
audit: .venv/.installed
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(UV) export --frozen --all-groups --no-emit-project --quiet -o "$$tmp/requirements.txt" && \
	.venv/bin/pip-audit --strict --disable-pip --progress-spinner off --requirement "$$tmp/requirements.txt" || { \
		echo "make audit: FAILED. Either a vulnerability is listed above, or pip-audit could not reach"; \
		echo "PyPI's advisory database (https://pypi.org/pypi/<name>/<version>/json): offline or behind a"; \
		echo "mirror that lacks the JSON API? Run it again with network access (docs/security.md)."; \
		exit 1; }

clean:
	rm -rf var .venv

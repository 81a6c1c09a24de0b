# One entry point for people and CI. `make run` and `make test` are all a newcomer needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY := .venv/bin/python
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RUN_ENV := DJANGO_DEBUG=true
DEMO_ARGS ?= --clinics 40 --days 14 --seed 1
PYTEST_ARGS ?=

.PHONY: help install run test lint format messages compilemessages migrations-check services browser bench clean

help:
	@echo "make run     the product with demo data on http://127.0.0.1:8000/"
	@echo "make test    every test, on PostgreSQL and Redis"
	@echo "make lint | messages | migrations-check | bench"

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

clean:
	rm -rf var .venv

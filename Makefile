# The quick-start commands: `make run`, `make test` and `make demo`; `make bench` measures the import;
# `make lint` and `make test-fast` are the checks to run while working.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
export FLASK_APP := wsgi

.PHONY: run test test-fast lint lock demo bench venv migrate web worker clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Every transitive dependency at the version in requirements.lock.
$(VENV)/.installed: requirements.txt requirements-dev.txt requirements.lock | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt -c requirements.lock
	touch $@

venv: $(VENV)/.installed

migrate: venv
	$(BIN)/flask db upgrade

## run: the web panel, an import worker and the IDLE watcher (push) on the embedded defaults (SQLite, local Redis);
## with no admin yet it prints the one-time setup address. One quoted command per process.
run: migrate
	@echo "rolsync: web panel on http://$(HOST):$(PORT)/, an import worker and the IDLE watcher; Ctrl-C stops them all"
	@$(BIN)/python scripts/run.py --setup-url http://$(HOST):$(PORT) -- \
	  "$(BIN)/python worker.py" \
	  "$(BIN)/python worker.py --watch" \
	  "$(BIN)/flask run --host $(HOST) --port $(PORT)"

web: migrate
	$(BIN)/flask run --host $(HOST) --port $(PORT)

worker: migrate
	$(BIN)/python worker.py

## test: the whole suite against real Dovecot, Redis, SQLite and PostgreSQL
test: venv
	./scripts/system-deps.sh
	$(BIN)/python -m pytest

## test-fast: the tests that need no Dovecot, browser, database or worker process (seconds)
test-fast: venv
	$(BIN)/python -m pytest -q -m "not (imap or browser or db or slow)"

## lint: ruff (pyflakes, import order, bugbear) on everything, mypy on rolsync/
lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

## lock: pin in requirements.lock what requirements*.txt pull in, at this venv's versions
lock: venv
	$(BIN)/python scripts/lock.py

## demo: a sample mailbox on a local Dovecot, a sample CRM and two users, the panel and a worker,
## the first import done; prints the URL and the passwords; Ctrl-C stops it all and removes its files
demo: venv
	./scripts/system-deps.sh
	$(BIN)/python -m rolsync.demo --host $(HOST) --port $(PORT)

## bench: import, idle-poll, matching and memory benchmarks on SQLite and PostgreSQL (own Dovecot; prints a table)
bench: venv
	./scripts/system-deps.sh
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache

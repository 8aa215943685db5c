# Forecastle: `make run` starts the whole service, `make test` runs every test.
# Both create the virtualenv and, where DATABASE_URL / REDIS_URL are unset, embedded servers.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Security lint of the project's code (tests excluded: they assert and run subprocesses by design). A finding
# that is not in the reviewed baseline fails `make lint`; docs/security.md says why each baselined one is safe.
BANDIT_TARGETS := accounts config forecast markets tools bench manage.py clients

.PHONY: run test test-fast lint format typecheck bench clean

$(STAMP): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Forecastle needs $(PYTHON) on the PATH"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m tools.stack run

# A local run keeps the test databases between runs (--reuse-db; new migrations still apply).
# CI (CI=true, set by .ci/run) builds them fresh.
REUSE_DB := $(if $(filter true 1 yes,$(CI)),,--reuse-db)

test: $(STAMP)
	$(PY) -m tools.stack test $(REUSE_DB) $(PYTEST_ARGS)

# The inner loop: all but the slow and browser tests, on two processes, quick Hypothesis profile.
test-fast: $(STAMP)
	$(PY) -m tools.stack test --reuse-db -q -m "not slow and not browser" -n 2 $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/bandit --quiet --recursive $(BANDIT_TARGETS) --baseline .bandit-baseline.json

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP)
	$(PY) -m tools.stack bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var

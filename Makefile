# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUN_STAMP  := $(VENV)/.run-installed
TEST_STAMP := $(VENV)/.test-installed

.PHONY: run test test-slow test-insider test-reliability lint format migrate bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(RUN_STAMP): $(BIN)/python requirements.txt pyproject.toml native/pyproject.toml native/setup.py \
	$(wildcard native/*.c native/*.h)
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(TEST_STAMP): $(RUN_STAMP) requirements-dev.txt
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

# Checkov lives in its own venv: its pinned dependencies differ from the application's.
TOOLS_STAMP := .venv-tools/.installed
$(TOOLS_STAMP): requirements-tools.txt
	$(PYTHON) -m venv .venv-tools
	.venv-tools/bin/pip install -q -r requirements-tools.txt
	touch $@

## Serve every function on http://127.0.0.1:$${PORT:-8080}/<function>/ (embedded PostgreSQL
## under .data/ unless DATABASE_URL is set).
run: $(RUN_STAMP)
	$(BIN)/plant serve

## Lint, then the default test suite against a real PostgreSQL (DATABASE_URL or embedded).
test: $(TEST_STAMP) $(TOOLS_STAMP) lint
	$(BIN)/pytest -q -m "not slow"

## The slower suites (not part of `make test`).
test-slow: $(TEST_STAMP)
	$(BIN)/pytest -q -m slow

## The insider's whole attack matrix (tests/insider, issue 22), then its table; the default
## suite runs its `insider_short` slice.
test-insider: $(TEST_STAMP)
	$(BIN)/pytest -q -p no:randomly tests/insider

## Every attack and fault test with the long settings (a 5-minute soak, more fuzzing), then
## their table (also in .reliability-table.md). The default suite runs short versions.
RELIABILITY_TESTS := tests/reliability tests/security \
	tests/registry/test_api.py::test_malformed_json_is_400_not_json_is_415_large_is_413 \
	tests/registry/test_injection.py tests/registry/test_isolation.py \
	tests/registry/test_append_only.py \
	tests/evidence/test_bundle_attacks.py tests/evidence/test_bounds.py \
	tests/evidence/test_bundle_memory.py::test_bundle_memory_does_not_grow_with_the_tenant \
	tests/web/test_look_alike_names.py tests/web/test_stored_text.py \
	tests/cloud/test_secret_rotation.py \
	tests/registry/test_batch_create.py::test_a_batch_beyond_the_process_cap_gets_503_before_its_body_is_read \
	tests/certify/test_four_eyes.py tests/certify/test_batch_and_bad_bodies.py \
	tests/audit/test_audited_four_eyes.py tests/audit/test_unstorable_text.py \
	tests/web/test_cache_headers.py tests/web/test_team_membership.py \
	tests/web/test_search.py tests/web/test_healthz.py \
	tests/certify/test_cascade.py::test_a_certification_racing_the_cascade_never_outlives_it \
	tests/evidence/test_request_logs.py tests/web/test_one_answer_per_mistake.py \
	tests/web/test_query_parameters.py
test-reliability: $(TEST_STAMP)
	PLANT_SOAK_SECONDS=$${PLANT_SOAK_SECONDS:-300} PLANT_FUZZ_EXAMPLES=$${PLANT_FUZZ_EXAMPLES:-200} \
	PLANT_GARBAGE_EXAMPLES=$${PLANT_GARBAGE_EXAMPLES:-3000} \
	$(BIN)/pytest -q -p no:randomly $(RELIABILITY_TESTS)

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(TEST_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(TEST_STAMP) bench/requirements.txt
	$(BIN)/pip install -q -r bench/requirements.txt
	touch $@

## Side-by-side benchmarks (not run by CI) into bench/results.json and bench/results.md;
## `make bench ARGS=--quick` for a small run.
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run $(ARGS)

migrate: $(RUN_STAMP)
	$(BIN)/plant migrate

clean:
	rm -rf $(VENV) .venv-tools .data .pytest_cache .ruff_cache .mypy_cache

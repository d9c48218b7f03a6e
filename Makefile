# Every target creates .venv and installs what it needs on first use, so a fresh clone just works.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test soak lint bench bench-vs-rsigma demo fuzz clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Everything but the soak (marked slow), which `make soak` runs: CI runs both. The tests mostly wait
# on daemons and NATS servers, so three pytest workers keep two cores busy (6.5 min instead of ~25);
# a test file runs whole in one worker (its module fixtures are set up once). TEST_WORKERS=0 runs
# them in this process.
TEST_WORKERS ?= 3
test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

# The fault suite's soak, for 5 minutes.
soak: $(STAMP)
	RSIGMA_SOAK_SECONDS=300 $(PY) -m pytest -q -s -m slow tests/faults

# The differential fuzzer on every SigmaHQ rule against RSigma and pySigma's sqlite backend, with a new
# random seed (printed) unless SEED= is given: `make fuzz SEED=1234` replays a run.
fuzz: $(STAMP)
	$(PY) -m tests.differential.fuzz $(if $(SEED),--seed $(SEED))

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

$(VENV)/.bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $(VENV)/.bench

bench: $(VENV)/.bench
	$(PY) benchmarks/engine_bench.py
	$(PY) benchmarks/correlation_bench.py
	$(PY) benchmarks/routing_bench.py
	$(PY) benchmarks/daemon_bench.py
	$(PY) benchmarks/nats_bench.py
	$(PY) benchmarks/nats_pipeline_bench.py
	$(PY) benchmarks/pool_bench.py

# Our engine against RSigma's (../shared/tools/rsigma-bench) on SigmaHQ, alternating, with the issue's
# targets marked; a few minutes, so not part of `bench`. ARGS= passes options, e.g. ARGS="--rounds 5".
bench-vs-rsigma: $(STAMP)
	$(PY) benchmarks/vs_rsigma.py $(ARGS)

# A throwaway JetStream server, `rsigma serve --workers 2` on examples/rules, the example events published
# and their detections shown, then everything stopped (examples/demo.py).
demo: $(STAMP)
	$(PY) examples/demo.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info

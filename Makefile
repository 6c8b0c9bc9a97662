# Every target makes and uses its own virtualenv in .venv.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m poisonproof demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench fuzz
	$(BIN)/ruff format --check src tests bench fuzz

# Every bench runs and writes its section; the target fails at the end if any bench
# missed one of its ratios (resolver_bench exits 1 then).
bench: $(STAMP)
	status=0; \
	$(BIN)/python bench/auth_bench.py --write BENCHMARKS.md || status=1; \
	$(BIN)/python bench/resolver_bench.py --write BENCHMARKS.md || status=1; \
	$(BIN)/python bench/cold_floor.py --write BENCHMARKS.md || status=1; \
	$(BIN)/python bench/worker_cache.py --write BENCHMARKS.md || status=1; \
	$(BIN)/python bench/lab_sweep.py --write BENCHMARKS.md || status=1; \
	$(BIN)/python bench/spoof_bench.py --write BENCHMARKS.md || status=1; \
	exit $$status

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info

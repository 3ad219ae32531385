# Two commands a newcomer needs:  make demo   and   make test
# Each creates .venv (python3 -m venv) and installs sleuth with its dev tools the first time.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: setup demo demo-run demo-matrix test lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/bisect-git/make_repo.py .demo/repo
	cd .demo/repo && $(abspath $(BIN))/sleuth bisect git --repo . --good demo-good --bad demo-bad --jobs 2 \
		--output $(abspath sleuth-runs) -- $(abspath $(BIN))/python check.py

demo-run: $(STAMP)
	$(BIN)/sleuth run --trials 12 --jobs 2 --metric 'step_ms=step_time_ms=([0-9.]+)' -- $(BIN)/python examples/flaky/train.py || true

demo-matrix: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/sleuth matrix --recipe examples/matrix-nan/recipe.yaml --jobs 2

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench .ci/smoke .ci/check_imports.py
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/overhead.py

clean:
	rm -rf $(VENV) .demo sleuth-runs .pytest_cache .mypy_cache .ruff_cache

# Two commands a newcomer needs:  make demo   and   make test
# Each creates .venv (python3 -m venv) and installs sleuth with its dev tools the first time.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: setup demo demo-run demo-matrix demo-images test lint bench clean

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

# the whole regression-triage chain on images built here (podman + runc; see examples/bisect-images)
DEMO_IMAGES := $(abspath .demo/images)
demo-images: $(STAMP)
	mkdir -p $(dir $(DEMO_IMAGES))
	$(BIN)/python examples/bisect-images/build_images.py --out $(DEMO_IMAGES) > $(DEMO_IMAGES).env
	. $(DEMO_IMAGES).env && $(BIN)/sleuth bisect images --runtime podman \
		--template 'localhost/sleuth-demo/app:{date}' --start-date 2025-03-01 \
		--source dep=/opt/dep --source lib=/opt/lib --build 'python3 /opt/build.py' \
		--cache-mount $(DEMO_IMAGES)/cache:/cache --env BUILD_CACHE=/cache --flaky off \
		--output $(abspath sleuth-runs) -- sh /opt/test.sh

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench .ci/smoke .ci/check_imports.py
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/overhead.py

clean:
	# the demo's podman store has mounts of its own: reset it before removing it
	if [ -f .demo/images.env ]; then . $(abspath .demo/images.env) && podman system reset --force >/dev/null 2>&1 || true; fi
	rm -rf $(VENV) .demo sleuth-runs .pytest_cache .mypy_cache .ruff_cache

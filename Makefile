# gankit: `make demo` trains the reference CGAN; `make test` runs the whole test suite.
# Both create .venv when it is missing. GPU users: create .venv and install the torch build for
# their CUDA first (https://pytorch.org/get-started/locally/); it is then kept as it is.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
# the package index torch comes from; empty: pip's own (PyPI's Linux wheel is the CUDA build).
# CPU-only: make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
RUN ?= runs/demo
ITERATIONS ?= 20000
EVAL_EVERY ?= 2000
STUDY ?= runs/study

.PHONY: setup demo study test test-fast lint format bench wheel-check clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || \
		$(BIN)/pip install -q "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install -q -e '.[serve,dev]'
	touch $@

demo: setup
	$(BIN)/gankit train --preset seed-cgan --dataset mnist-sample --out $(RUN) --overwrite --seed 1
	$(BIN)/gankit sample $(RUN) --n 100 --labels balanced --grid $(RUN)/samples.png
	@echo "open $(RUN)/images/20000.png, $(RUN)/samples.png and $(RUN)/loss.png"

# the report's own study: its GAN and CGAN, trained, evaluated alike and compared
study: setup
	$(BIN)/gankit train --preset seed-gan --out $(STUDY)/seed-gan --overwrite --seed 1 \
		--iterations $(ITERATIONS) --eval-every $(EVAL_EVERY)
	$(BIN)/gankit train --preset seed-cgan --out $(STUDY)/seed-cgan --overwrite --seed 1 \
		--iterations $(ITERATIONS) --eval-every $(EVAL_EVERY)
	$(BIN)/gankit compare $(STUDY)/seed-gan $(STUDY)/seed-cgan --out $(STUDY) --evaluate
	@echo "open $(STUDY)/compare.html (summary: $(STUDY)/compare.md)"

test: setup
	$(BIN)/pytest -q

test-fast: setup
	$(BIN)/pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: setup
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: setup
	$(BIN)/python benchmarks/bench_train.py

wheel-check: setup
	PYTHON=$(PYTHON) TORCH="$(TORCH)" .ci/wheel_check.sh

clean:
	rm -rf $(VENV) build dist *.egg-info src/*.egg-info .pytest_cache .ruff_cache

# Two commands for a fresh clone: `make repro` (set up, then run the pipeline) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9
# The CPU wheel of torch lies in $PIP_FIND_LINKS on the project's machines; uv ignores pip's config, so pass it on.
FIND_LINKS := $(if $(PIP_FIND_LINKS),--find-links "$(PIP_FIND_LINKS)",)
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: repro grid install data pipeline test lint extract-lock

# `make repro`: the part of the grid that answers the paper's claims (the `report` stage and what it needs); `make
# grid`: every stage of both pipelines (every ablation, the grid report in reports/grid/, the OCR extraction).
repro: install data pipeline

grid: install data
	$(MAKE) pipeline TARGETS="$(GRID)"

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock requirements-extract.lock
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet uv==$(UV_VERSION)
	$(VENV)/bin/uv pip sync --quiet --python $(PY) $(FIND_LINKS) --compile-bytecode requirements.lock
	# the `extract` extra (stacmr extract, its tests); its lock repeats the core pins it shares, so nothing moves
	$(VENV)/bin/uv pip install --quiet --python $(PY) $(FIND_LINKS) --no-deps --compile-bytecode -r requirements-extract.lock
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps --compile-bytecode -e .
	touch $@

# data.dvc tracks data/, the raw inputs a user supplies. On the embedded synthetic default it records an empty
# folder, which git cannot carry: recreate it. With real inputs recorded, pull them from the DVC remote.
data:
	@if [ -d data ]; then :; \
	elif [ -n "$$(dvc remote list)" ]; then dvc pull data.dvc; \
	elif grep -q 'nfiles: 0' data.dvc; then mkdir data; \
	else echo "data.dvc records raw inputs that are not here: 'dvc pull data.dvc' from your remote," \
	  "or place them under data/ (README, 'Real data')" >&2; exit 1; fi

# TARGETS: stages to reproduce (default: the claims report and its inputs), e.g. `make pipeline TARGETS=trainset`
GRID := dvc.yaml pipelines/extract/dvc.yaml
TARGETS ?= report
pipeline:
	dvc repro $(TARGETS)

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

# Re-resolve the `extract` extra's lock after changing requirements-extract.in (core pins stay as requirements.lock has them)
extract-lock:
	uv pip compile --quiet --python $(PY) $(FIND_LINKS) --no-emit-find-links -c requirements.lock \
	  --override requirements-extract.overrides requirements-extract.in -o requirements-extract.lock \
	  --custom-compile-command "make extract-lock"

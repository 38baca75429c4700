# ecgrepro: `make book` builds the book from the real sample, `make test` runs the tests.
# Both create the virtual environment (.venv) and install the pinned dependencies first.

PYTHON    ?= python3
VENV      := .venv
PY        := $(VENV)/bin/python
PROFILE   ?= quick
ARGS      ?=
MATHJAX   := _build/vendor/mathjax/es5/tex-svg.js
DATA_ARG  := $(if $(ECGREPRO_DATA),--data $(ECGREPRO_DATA),)

.DEFAULT_GOAL := help
.PHONY: help venv vendor book data html test lint clean bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'
	@echo "  variables: PROFILE=quick|paper  ECGREPRO_DATA=/path/to/root  ARGS='-p epochs 5'"

venv: $(VENV)/.installed ## create .venv and install the pinned dependencies

$(VENV)/.installed: requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

vendor: $(MATHJAX) ## vendor MathJax 3 (npm mathjax@3) so the book opens offline

$(MATHJAX):
	mkdir -p _build/vendor
	cd _build/vendor && rm -rf package mathjax && npm pack --silent mathjax@3 >/dev/null \
	  && tar xzf mathjax-3*.tgz && rm mathjax-3*.tgz && mv package mathjax
	test -f $@

book: ## set up, execute the notebooks (PROFILE=quick) and build _build/html
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory venv vendor && \
	$(VENV)/bin/ecgrepro book --profile $(PROFILE) $(DATA_ARG) $(ARGS) && \
	echo "make book: wall time $$(( $$(date +%s) - start )) s (profile $(PROFILE))"

data: venv ## download PTB-XL + CPSC 2018 from PhysioNet into DATA=/path (needs internet)
	@test -n "$(DATA)" || { echo "usage: make data DATA=/path/to/data-root"; exit 2; }
	$(VENV)/bin/ecgrepro download $(DATA)

html: venv vendor ## rebuild the HTML from the last executed notebooks, without executing them
	$(VENV)/bin/ecgrepro book --no-execute

test: venv ## run the unit tests on the real sample
	$(VENV)/bin/ruff check ecgrepro tests
	$(PY) -m pytest

lint: venv ## ruff
	$(VENV)/bin/ruff check ecgrepro tests

bench: venv ## training-speed benchmark: records/s, FLOPs, share outside forward/backward
	$(PY) -m ecgrepro.bench

clean: ## remove the build (keeps .venv)
	rm -rf _build

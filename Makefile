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
.PHONY: help venv vendor book data html check-book test smoke pdf tex lint clean bench repro-check compare-tables rehearsal

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

check-book: venv ## open every page of _build/html in headless Chromium (after make book)
	@test -f _build/html/index.html \
	  || { echo "check-book: no _build/html/index.html; run make book first"; exit 2; }
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  echo "check-book: installing Debian's chromium and chromium-driver"; \
	  $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y --no-install-recommends chromium chromium-driver; \
	fi
	$(PY) -m ecgrepro.book.checkbook _build/html --screenshots _build/screenshots

test: venv vendor ## run the unit tests on the real sample (the smoke run is `make smoke`)
	$(VENV)/bin/ruff check ecgrepro tests
	$(PY) -m pytest -m "not notebooks" --durations=10

# Peak resident set: getrusage(RUSAGE_CHILDREN).ru_maxrss, the largest single process among
# pytest and the page kernels it started and waited for (KiB on Linux).
smoke: venv ## every page at the paper's shapes (500 Hz, 15,000 samples) on tiny data, then the book
	@$(PY) -c 'import resource, subprocess, sys, time; t0 = time.time(); \
	rc = subprocess.call([sys.executable, "-m", "pytest", "-m", "notebooks"]); \
	peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20; \
	print(f"make smoke: wall time {time.time() - t0:.0f} s, peak resident set {peak:.1f} GiB"); \
	sys.exit(rc)'

# Debian's TeX Live for `make pdf`, installed when xelatex is absent (sudo only when not root).
SUDO      := $(if $(filter 0,$(shell id -u)),,sudo)
TEXLIVE   := texlive-xetex texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended \
             texlive-plain-generic latexmk fonts-freefont-otf lmodern tex-gyre

tex: ## install TeX Live (xelatex, latexmk) from Debian when absent
	@command -v xelatex >/dev/null && command -v latexmk >/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(TEXLIVE); }

pdf: venv tex ## the whole book as one PDF (_build/pdf/book.pdf) from the last executed notebooks
	$(VENV)/bin/ecgrepro pdf

lint: venv ## ruff
	$(VENV)/bin/ruff check ecgrepro tests

bench: venv ## training-speed benchmark: records/s, FLOPs, share outside forward/backward
	$(PY) -m ecgrepro.bench

# Synthetic data roots of 0.1, 0.5 and 1.0 times the full datasets (21,799 PTB-XL records at 100
# and 500 Hz, 6,877 CPSC), the sample's records recycled; each step timed and measured in its own
# process; the table in _build/tables/rehearsal.csv, the roots and caches removed once measured.
# Measured at 1.0 on 2 CPU cores (2026-12-05): 33 min and 55.6 GB of disk (48 GB of it the four
# paper-shape signal caches); 0.1 and 0.5 add about 4 and 17 min. It refuses to start a fraction
# the disk cannot hold.
rehearsal: venv ## by hand, not in CI: full-size rehearsal on synthetic data (~1 h, 56 GB disk)
	$(PY) -m ecgrepro.rehearsal $(ARGS)

# Table 2 (PROFILE=quick) executed twice, retraining every model, into two build folders of its
# own (their signal caches too); every CSV it writes must be the same byte for byte (~15 min).
REPRO_RUN := import sys; from pathlib import Path; from ecgrepro.book.runner import execute_notebooks; \
  from ecgrepro.config import find_data_root; execute_notebooks(sys.argv[1], {"retrain": True}, \
  find_data_root(sys.argv[2] or None), Path(sys.argv[3]).resolve(), ["table2_generalisation"])

repro-check: venv ## Table 2 twice from scratch (retrained): its CSVs must be identical
	rm -rf _build/repro-a _build/repro-b
	$(PY) -c '$(REPRO_RUN)' $(PROFILE) "$(ECGREPRO_DATA)" _build/repro-a
	$(PY) -c '$(REPRO_RUN)' $(PROFILE) "$(ECGREPRO_DATA)" _build/repro-b
	@status=0; for a in _build/repro-a/tables/*.csv; do \
	  f=$$(basename $$a); [ "$$f" = page_times.csv ] && continue; \
	  if cmp -s $$a _build/repro-b/tables/$$f; then echo "repro-check: $$f identical"; \
	  else echo "repro-check: $$f DIFFERS"; status=1; fi; \
	done; exit $$status

# Every CSV of one build's tables/ against another's, byte for byte (a refactor must change none;
# page_times.csv and run_report.csv hold times, paths and the commit, so they are left out).
compare-tables: ## every CSV of two builds' tables/ byte for byte (A=old/tables B=new/tables)
	@test -d "$(A)" -a -d "$(B)" || { echo "usage: make compare-tables A=old/_build/tables B=new/_build/tables"; exit 2; }
	@status=0; n=0; for a in $(A)/*.csv; do \
	  f=$$(basename $$a); case $$f in page_times.csv|run_report.csv) continue;; esac; n=$$((n+1)); \
	  if [ ! -f $(B)/$$f ]; then echo "compare-tables: $$f MISSING in $(B)"; status=1; \
	  elif cmp -s $$a $(B)/$$f; then echo "compare-tables: $$f identical"; \
	  else echo "compare-tables: $$f DIFFERS"; status=1; fi; \
	done; for b in $(B)/*.csv; do [ -f $(A)/$$(basename $$b) ] || { echo "compare-tables: $$(basename $$b) only in $(B)"; status=1; }; done; \
	echo "compare-tables: $$n CSVs compared"; exit $$status

clean: ## remove the build (keeps .venv)
	rm -rf _build

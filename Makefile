# The whole set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
BASE   := $(VENV)/.installed-base
TEST   := $(VENV)/.installed-test
LAB    := $(VENV)/.installed-notebook

.PHONY: demo lab test lint data bench system-deps clean

demo: $(BASE)
	$(VENV)/bin/rolloutlab demo

# JupyterLab on 127.0.0.1 in notebooks/ (it prints the URL with its token; as root, in a
# container, it needs --allow-root).
lab: $(LAB)
	cd notebooks && ../$(VENV)/bin/jupyter lab --ip=127.0.0.1 --no-browser \
	  $$([ "$$(id -u)" = 0 ] && echo --allow-root)

test: $(TEST) system-deps
	$(PY) -m pytest

lint: $(TEST)
	$(VENV)/bin/ruff check rolloutlab tests benchmarks
	$(VENV)/bin/ruff format --check rolloutlab tests benchmarks
	$(VENV)/bin/mypy rolloutlab

# Regenerate the bundled recordings in data/ (seeded: the same files every time).
data: $(BASE)
	for s in healthy error-regression latency-regression ab; do \
	  $(VENV)/bin/rolloutlab simulate $$s --seed 7 -o data/$$s.parquet || exit 1; done

bench: $(TEST) system-deps
	$(PY) benchmarks/fetch.py
	$(PY) benchmarks/decision_quality.py
	$(PY) benchmarks/judge_speed.py
	$(PY) benchmarks/fleet_replay.py

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "rolloutlab needs Python >= 3.11; set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(BASE): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(TEST): pyproject.toml $(BASE)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

$(LAB): pyproject.toml $(BASE)
	$(PY) -m pip install --quiet -e ".[notebook]"
	touch $@

# Prometheus (with promtool) for the integration tests, Chromium for the report test.
# Installed from Debian when missing and we are root; otherwise say how.
system-deps:
	@bash .ci/system-deps

clean:
	rm -rf $(VENV) .pytest_cache

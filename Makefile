# Everything a fresh machine with only python3 needs: `make demo`, `make test`.
# The demo installs only the importer itself (a minute on a cold cache); the tests add
# their extras (cloud SDKs and emulators, pandas, polars, hypothesis, linters) and Azurite.
VENV       := .venv
PY         := $(VENV)/bin/python
DEMO_STAMP := $(VENV)/.demo-stamp
TEST_STAMP := $(VENV)/.installed-stamp

.PHONY: venv demo test lint bench clean

venv: $(TEST_STAMP)

$(DEMO_STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e .
	touch $(DEMO_STAMP)

$(TEST_STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	# Azurite (Azure's storage emulator) for the az:// tests; without npm they are skipped.
	if command -v npm >/dev/null; then npm install --silent --no-audit --no-fund --prefix $(VENV)/azurite azurite@3 \
		|| echo "azurite not installed: the az:// tests will be skipped"; fi
	touch $(DEMO_STAMP) $(TEST_STAMP)

demo: $(DEMO_STAMP)
	$(PY) scripts/demo.py

test: $(TEST_STAMP)
	$(PY) -m pytest -q -n 2

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check importer tests scripts bench examples
	$(VENV)/bin/ruff format --check importer tests scripts bench examples
	$(VENV)/bin/mypy importer

bench: $(TEST_STAMP)
	$(PY) bench/bench.py

clean:
	rm -rf $(VENV) .ecdp-import .demo *.egg-info

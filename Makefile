# Spindle: `make run` starts the app, `make test` runs every test, `make bench` prints the benchmarks.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501
# OCR languages beyond English: Tesseract's Debian packs, installed by `make run` and `make test`.
OCR_LANGUAGE_PACKS := deu fra spa ita por nld rus chi-sim jpn kor ara

.PHONY: run test bench lint screenshot constraints run-deps system-deps oidc-deps clean

# constraints.txt pins every package, indirect ones too, so two installs are the same
# (`make constraints` rewrites it from the current .venv after a requirement changed).
$(VENV)/.runtime: requirements.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt constraints.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	touch $@

run: run-deps $(VENV)/.runtime
	$(PY) -m streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT)

# System packages, installed with apt when this machine allows it (root, or passwordless sudo);
# otherwise say what is missing. The app needs OCR (Tesseract and its language packs); the tests
# also need a browser, a database server, a message broker, fonts and npm.
RUN_CHECKS = command -v tesseract >/dev/null || missing="$$missing tesseract-ocr"; \
	for pack in $(OCR_LANGUAGE_PACKS); do ls /usr/share/tesseract-ocr/*/tessdata/$$(echo $$pack | tr - _).traineddata >/dev/null 2>&1 || missing="$$missing tesseract-ocr-$$pack"; done;
TEST_CHECKS = command -v chromium >/dev/null || missing="$$missing chromium"; \
	test -x /usr/lib/postgresql/15/bin/initdb || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	test -e /usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf || missing="$$missing fonts-dejavu-core"; \
	test -e /usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf || missing="$$missing fonts-liberation"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	test -x /usr/lib/rabbitmq/bin/rabbitmq-server || missing="$$missing rabbitmq-server";
APT_INSTALL = if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else \
	    echo "Missing system packages:$$missing (install them with apt-get, then run make again)"; exit 1; fi; \
	  echo "Installing$$missing with apt-get"; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

run-deps:
	@missing=""; $(RUN_CHECKS) $(APT_INSTALL)

system-deps:
	@missing=""; $(RUN_CHECKS) $(TEST_CHECKS) $(APT_INSTALL)

# The OpenID Connect provider the sign-in tests start (npm, pinned; v8 supports node 20), under the git-ignored .venv/.
OIDC_DIR := $(VENV)/oidc
OIDC_PROVIDER_VERSION := 8.8.1

$(OIDC_DIR)/.installed-$(OIDC_PROVIDER_VERSION):
	mkdir -p $(OIDC_DIR)
	test -f $(OIDC_DIR)/package.json || echo '{"name": "spindle-test-oidc", "private": true}' > $(OIDC_DIR)/package.json
	cd $(OIDC_DIR) && npm install --no-audit --no-fund --silent --save-exact oidc-provider@$(OIDC_PROVIDER_VERSION)
	touch $@

oidc-deps: system-deps $(OIDC_DIR)/.installed-$(OIDC_PROVIDER_VERSION)

test: system-deps $(VENV)/.dev oidc-deps
	$(PY) -m pytest

bench: system-deps $(VENV)/.dev
	$(PY) -m benchmarks

# ruff (lint and format settings) and mypy (utils/ and config/), both configured in pyproject.toml.
lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The README's picture of the Performance page, from the real app in Chromium (tests never write it).
screenshot: system-deps $(VENV)/.dev
	$(PY) -m tests.screenshot

constraints: $(VENV)/.dev
	{ echo '# Every installed package, indirect ones too, at the version the tests passed with: `make constraints` rewrites it.'; \
	  $(PY) -m pip freeze --exclude-editable | grep -v '^-e '; } > constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache

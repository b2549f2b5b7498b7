# Two entry points: `make demo` and `make test`. Both set up everything they need
# on a fresh Debian 12 machine with Python 3.11 (venv, pinned Python packages,
# Debian packages via apt, with sudo when not root).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint bench clean debian-test-deps

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch==2.13.0 is pinned: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# Debian packages the tests talk to as real peers.
DEBIAN_TEST_PACKAGES := chromium openssh-server openssh-client iproute2 postgresql
debian-test-deps:
	@missing=""; for p in $(DEBIAN_TEST_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

demo: $(STAMP)
	$(BIN)/edgebench demo

test: $(STAMP) debian-test-deps
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/pytest benchmarks --benchmark-only -q

clean:
	rm -rf $(VENV) .edgebench .pytest_cache

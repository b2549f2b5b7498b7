# Two entry points: `make demo` and `make test`. Both set up everything they need
# on a fresh Debian 12 machine with Python 3.11 (venv, pinned Python packages,
# Debian packages via apt, with sudo when not root).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint bench clean debian-test-deps debian-mcu-deps

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch==2.13.0 is pinned: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# Debian packages the emulated microcontroller needs (the demo has one): the Arm
# toolchain and newlib-nano for the runner firmware, QEMU to run it.
DEBIAN_MCU_PACKAGES := qemu-system-arm gcc-arm-none-eabi libnewlib-arm-none-eabi
# Debian packages the tests talk to as real peers.
DEBIAN_TEST_PACKAGES := chromium openssh-server openssh-client iproute2 postgresql ser2net adb \
  $(DEBIAN_MCU_PACKAGES)
debian-mcu-deps: DEBIAN_TEST_PACKAGES := $(DEBIAN_MCU_PACKAGES)
debian-mcu-deps debian-test-deps:
	@missing=""; for p in $(DEBIAN_TEST_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The agent's oldest supported Python (JetPack 5 boards run 3.8), with tflite-runtime
# as Pi images have it. Tested where a Python 3.8 interpreter exists (pyenv or the
# system's); elsewhere that one test is skipped and says why.
PY38 := $(firstword $(wildcard $(HOME)/.pyenv/versions/3.8*/bin/python3.8 /usr/bin/python3.8 /usr/local/bin/python3.8))
AGENT38 := .venv-agent38
$(AGENT38)/.installed: requirements-agent38.lock
	$(PY38) -m venv $(AGENT38)
	$(AGENT38)/bin/pip install --quiet -r requirements-agent38.lock
	touch $@
ifneq ($(PY38),)
test: $(AGENT38)/.installed
test: export EDGEBENCH_AGENT_PY38 := $(abspath $(AGENT38))/bin/python
endif

demo: $(STAMP) debian-mcu-deps
	$(BIN)/edgebench demo

test: $(STAMP) debian-test-deps
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

# Benchmarks of edgebench itself (fidelity, harness cost, adaptive stopping, scale);
# writes its figures into benchmarks/RESULTS.md. About 15 minutes; run it on a quiet machine.
bench: $(STAMP) debian-test-deps
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(AGENT38) .edgebench .pytest_cache

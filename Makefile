# Two commands do all set-up on a fresh Linux machine with Python 3.11:
#   make demo   - install the package and its runtime dependencies, then train the full-size
#                 paper network on Fashion-MNIST (offline)
#   make test   - add the test extras (and PyTorch, the benchmark's peer), lint and run the suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
DEMO_FLAGS ?=

# One stamp per install level: the demo needs none of the test extras (jax, torch, scipy,
# tensorflow-datasets: about 1.2 GB more).
RUNTIME := $(VENV)/.installed-runtime
TESTING := $(VENV)/.installed-test

.PHONY: demo test lint install install-test fashion-mnist clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(RUNTIME): setup.cfg pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e .
	touch $@

$(TESTING): $(RUNTIME)
	$(PY) -m pip install -q -e ".[test,torch]"
	touch $@

install: $(RUNTIME)

install-test: $(TESTING)

# Fashion-MNIST comes from Debian's dataset-fashion-mnist package (no download at run time).
fashion-mnist:
	@if [ ! -f $(FASHION_MNIST) ] && [ ! -f $$HOME/.keras/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist; \
	fi

demo: install fashion-mnist
	$(VENV)/bin/keras-alexnet demo $(DEMO_FLAGS)

lint: install-test
	$(VENV)/bin/ruff check keras_alexnet benchmarks scripts tests

# Two pytest workers: much of the suite is one-threaded (TensorFlow start-up in subprocesses,
# waits for peers); measured, the two workers kept 1.7 of the 2 cores busy.
test: install-test fashion-mnist lint
	$(VENV)/bin/pytest -q -n 2

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache

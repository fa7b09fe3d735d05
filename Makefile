# Two commands do all set-up on a fresh Linux machine with Python 3.11:
#   make demo   - install, then train the full-size paper network on Fashion-MNIST (offline)
#   make test   - install, lint and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
DEMO_FLAGS ?=

.PHONY: demo test lint install fashion-mnist clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test,torch]"
	touch $@

install: $(VENV)/.installed

# Fashion-MNIST comes from Debian's dataset-fashion-mnist package (no download at run time).
fashion-mnist:
	@if [ ! -f $(FASHION_MNIST) ] && [ ! -f $$HOME/.keras/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist; \
	fi

demo: install fashion-mnist
	$(PY) scripts/demo.py $(DEMO_FLAGS)

lint: install
	$(VENV)/bin/ruff check keras_alexnet benchmarks scripts tests

test: install fashion-mnist lint
	$(VENV)/bin/pytest -q

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache

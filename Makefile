# Two commands on a fresh machine: `make demo` and `make test`. Both set up .venv first (test with the ray extra).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RAY_STAMP := $(VENV)/.installed-ray

.PHONY: demo test samples

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/colorstream invert samples/astronaut_pencil.png samples/astronaut_line.png -o out/demo --overwrite
	$(BIN)/colorstream colorize samples/astronaut_gray.mp4 -o out/demo/astronaut_colorized.mp4 --overwrite

# The tests also cover colorize --ray, so they install the optional Ray extra; demo works without it.
$(RAY_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[test,ray]'
	touch $(RAY_STAMP)

test: $(RAY_STAMP)
	$(BIN)/python -m pytest -q

# Rebuild samples/ from the public-domain source (needs scikit-image, installed here).
samples: $(STAMP)
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[test,samples]'
	$(BIN)/python samples/make_samples.py

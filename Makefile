# Two commands for a fresh machine: `make run` and `make test` (see README).
# Both create .venv/ if missing and install what they need; stamps make re-runs instant.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
WEB_STAMP := web/dist/.built
# Reference libraries that declare torchvision as a dependency: installed without their
# dependencies so they cannot replace our CPU torch with a CUDA build. spandrel imports without
# torchvision (diffusion/upscale.py lends stand-ins for LaMa/RestoreFormer, which need it to run).
NO_DEPS_RUNTIME := open_clip_torch==3.3.0 spandrel==0.4.2
NO_DEPS_DEV := k-diffusion==0.1.1.post1 clip-anytorch==2.6.0 peft==0.21.2 lycoris_lora==4.1.3

.PHONY: run test desktop desktop-install setup setup-dev web chromium desktop-system test-python test-web demo-checkpoint clean

run: setup web demo-checkpoint
	$(PY) main.py $(ARGS)

test: setup-dev web chromium desktop-system
	$(MAKE) --no-print-directory test-python test-web

setup: $(RUNTIME_STAMP)
setup-dev: $(DEV_STAMP)

$(RUNTIME_STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -r requirements.txt
	$(PIP) install --quiet --no-deps $(NO_DEPS_RUNTIME)
	touch $@

$(DEV_STAMP): $(RUNTIME_STAMP) requirements-dev.txt
	$(PIP) install --quiet -r requirements-dev.txt
	$(PIP) install --quiet --no-deps $(NO_DEPS_DEV)
	touch $@

# The web editor is built from npm packages (no CDN); skipped until web/package.json exists.
web:
	@if [ -f web/package.json ]; then $(MAKE) --no-print-directory $(WEB_STAMP); fi

$(WEB_STAMP): $(shell find web -path web/node_modules -prune -o -path web/dist -prune -o -type f -print 2>/dev/null)
	cd web && npm ci --no-audit --no-fund --loglevel=error && npm run build
	touch $@

# Browser tests use Debian's chromium, never a browser download.
chromium:
	@if [ -f web/package.json ] && ! command -v chromium >/dev/null; then \
		(apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "warning: chromium not installed; browser tests will be skipped"; \
	fi

# Desktop mode (`main.py --desktop`): pywebview over Debian's WebKitGTK. PyGObject comes from
# Debian (python3-gi) because PyPI only has it as a source build; desktop/system_modules.py lends
# it to the venv. Xvfb lets the tests open the window without a screen.
DESKTOP_DEBS := python3-gi gir1.2-webkit2-4.1 xvfb
DESKTOP_PY := pywebview==6.2.1

desktop: setup web demo-checkpoint desktop-system
	$(PIP) install --quiet $(DESKTOP_PY)
	$(PY) main.py --desktop $(ARGS)

desktop-install: setup
	$(PY) main.py desktop-install

desktop-system:
	@if ! command -v Xvfb >/dev/null || ! [ -d /usr/lib/python3/dist-packages/gi ] || ! ls /usr/lib/*/girepository-1.0/WebKit2-4.1.typelib >/dev/null 2>&1; then \
		(apt-get update -qq && apt-get install -y -qq --no-install-recommends $(DESKTOP_DEBS) >/dev/null) || echo "warning: $(DESKTOP_DEBS) not installed; the desktop window test will be skipped"; \
	fi

demo-checkpoint: setup
	@if [ -f tools/place_demo_checkpoint.py ]; then $(PY) tools/place_demo_checkpoint.py; fi

test-python:
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

test-web:
	@if [ -f web/package.json ] && grep -q '"test"' web/package.json; then cd web && npm test; fi

clean:
	rm -rf $(VENV) web/node_modules web/dist

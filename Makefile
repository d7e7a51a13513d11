# Two commands do everything on a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
# torch first, pinned: a looser pin with no torch installed would pull a multi-GB CUDA build.
TORCH  := torch==2.13.0

.PHONY: run test test-all lint bench install install-dev chromium clean lightzero-venv

$(VENV)/.base: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install $(TORCH)
	$(PIP) install -c constraints.txt -e ".[envs,offline,rlhf]"
	touch $@

# d3rlpy (benchmarks/offline_vs_d3rlpy.py) pins gymnasium==1.0.0 and we have 1.4: it goes in without its
# dependencies, and the bench extra brings the ones it imports (docs/offline-vs-d3rlpy.md)
$(VENV)/.dev: $(VENV)/.base
	$(PIP) install -c constraints.txt -e ".[envs,offline,rlhf,dev,bench]"
	$(PIP) install --no-deps d3rlpy==2.8.1
	touch $@

install: $(VENV)/.base
install-dev: $(VENV)/.dev

# Debian's chromium for the browser tests (playwright cannot download a browser here).
chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

run: install
	$(VENV)/bin/rlworks lab

lint: install-dev
	$(VENV)/bin/ruff check src tests benchmarks

test: install-dev chromium lint
	$(PY) -m pytest -q -m "not slow"

test-all: install-dev chromium
	$(PY) -m pytest -q

# Side-by-side benchmarks (ratios against the peer measured in the same run); keep the machine idle.
bench: install-dev
	$(VENV)/bin/rlworks bench tabular
	$(VENV)/bin/rlworks bench --vs sb3 --algo ppo
	$(VENV)/bin/rlworks bench --vs sb3 --algo a2c
	$(VENV)/bin/rlworks bench --vs sb3 --algo ppo --config best
	$(VENV)/bin/rlworks bench --vs sb3 --algo dqn
	$(VENV)/bin/rlworks bench --vs sb3 --algo sac

# LightZero 0.2.0, the MuZero peer (benchmarks/search_vs_lightzero.py, benchmarks/lightzero_cartpole.py): its pins
# (gym 0.25, gymnasium 0.28, numpy<2, DI-engine's setuptools<=66 against torch 2.13's >=77) cannot live beside
# rlworks' stack, so it gets a venv of its own, .lzvenv, installed the way benchmarks/lightzero_notes.md records.
LZVENV := .lzvenv
lightzero-venv:
	test -x $(LZVENV)/bin/python || $(PYTHON) -m venv $(LZVENV)
	$(LZVENV)/bin/python -m pip install -q $(TORCH)
	$(LZVENV)/bin/python -m pip install -q --no-deps LightZero==0.2.0 DI-engine==0.5.3
	$(LZVENV)/bin/python -m pip install -q -c benchmarks/lightzero-constraints.txt -r benchmarks/lightzero-requirements.txt

clean:
	rm -rf $(VENV) runs .pytest_cache

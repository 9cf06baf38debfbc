# ConvAE course: every verb sets up what it needs first. See README.md.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# Quiet TensorFlow everywhere (nbgrader scores a test cell with stderr output as 0).
export TF_CPP_MIN_LOG_LEVEL ?= 3
export TF_ENABLE_ONEDNN_OPTS ?= 0

CHAPTERS := $(notdir $(wildcard solutions/[0-9][0-9]-*))
STAMP := $(VENV)/.installed
LAB_ARGS ?=

.PHONY: help setup data lab test release book grade limits check bench binder clean

help:
	@echo "make lab      set up, fetch data, open JupyterLab on the course"
	@echo "make test     set up, fetch data, run the whole test suite (fast mode)"
	@echo "make test-cluster  as root: a real JupyterHub + nbgrader exchange class and grading on a real Slurm (tests/cluster)"
	@echo "make setup    create $(VENV) with the pinned packages and the convae helper package"
	@echo "make data     fetch and verify MNIST into data/mnist.npz"
	@echo "make release  regenerate the student notebooks in notebooks/ from solutions/"
	@echo "make book     build the course website into book/_build/_build/html"
	@echo "make grade    grade a class: SUBMISSIONS=<folder or .zip> [WORKERS=N] -> grading/grades.csv, feedback/, log.txt"
	@echo "make limits   measure each chapter's solution, write the grading time limits grading/limits.json"
	@echo "              CHAPTER=NN-topic: only that chapter (the others keep theirs)"
	@echo "make check    a student's check before submitting: NOTEBOOK=notebooks/01-pixels/01-pixels.ipynb"
	@echo "make bench    run every chapter in full mode (then its published anchor recipes), write bench/results.json"
	@echo "              KERAS_BACKEND=jax: the same on JAX (installed first), write bench/results-jax.json"
	@echo "make binder   every chapter in full mode as Binder runs it: a fresh .binder-venv from binder/'s pins,"
	@echo "              the kernel killed above 2 GB; write bench/binder.json"

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'"; exit 1; }
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -e .
	@touch $(STAMP)

setup: $(STAMP)

data: setup
	$(VENV)/bin/python -m convae.data

# .jupyter-course/overrides.json: the course's JupyterLab defaults (no news popup).
lab: data
	$(VENV)/bin/jupyter lab --ServerApp.root_dir="$(CURDIR)" --LabApp.app_settings_dir="$(CURDIR)/.jupyter-course" $(LAB_ARGS) notebooks/01-pixels/01-pixels.ipynb

test: data
	CONVAE_FAST=1 $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# A real class end to end (grading/README.md, "A real class"): JupyterHub with nbgrader's exchange, and
# grading on a single-node Slurm cluster. As root (system users, services). jupyterhub goes into .venv
# (the Hub spawns each user's server from it); its proxy into grading/cluster/node_modules (npm ci);
# slurm-wlm and munge are apt-get installed by grading/cluster/slurm.py when missing.
.PHONY: test-cluster
CLUSTER_STAMP := $(VENV)/.cluster-installed
$(CLUSTER_STAMP): requirements-cluster.txt $(STAMP)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-cluster.txt
	@touch $(CLUSTER_STAMP)

grading/cluster/node_modules/.package-lock.json: grading/cluster/package.json grading/cluster/package-lock.json
	cd grading/cluster && npm ci --no-audit --no-fund --loglevel=error

test-cluster: data $(CLUSTER_STAMP) grading/cluster/node_modules/.package-lock.json
	CONVAE_FAST=1 $(VENV)/bin/python -m pytest tests/cluster $(PYTEST_ARGS)

release: setup
	@for ch in $(CHAPTERS); do nbgrader generate_assignment "$$ch" --force --log-level=WARN || exit 1; done
	@echo "released: $(CHAPTERS) -> notebooks/"

book: data
	$(VENV)/bin/python -m convae.book

# SUBMISSIONS: a folder <student>/<chapter>/<chapter>.ipynb or an LMS zip (default grading/submitted).
SUBMISSIONS ?= grading/submitted
WORKERS ?= $(shell nproc 2>/dev/null || echo 2)
grade: data
	$(VENV)/bin/python -m convae.grading.run "$(SUBMISSIONS)" --workers $(WORKERS) $(GRADE_ARGS)

# Per-chapter grading time limits from each solution's measured run (grading/README.md, "Limits").
limits: data
	$(VENV)/bin/python -m convae.grading.limits $(CHAPTER)

# A student's own check before submitting: the visible tests, as Validate runs them.
check: setup
	@test -n "$(NOTEBOOK)" || { echo "usage: make check NOTEBOOK=notebooks/01-pixels/01-pixels.ipynb"; exit 2; }
	$(VENV)/bin/nbgrader validate "$(NOTEBOOK)"

# make bench KERAS_BACKEND=jax: the same benchmark on JAX, installed into .venv first. The backend is
# exported to the bench, hence to the chapter kernels and the anchor recipes it starts.
JAX_STAMP := $(VENV)/.jax-installed
$(JAX_STAMP): requirements-jax.txt $(STAMP)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-jax.txt
	@touch $(JAX_STAMP)

bench: data $(if $(filter jax,$(KERAS_BACKEND)),$(JAX_STAMP))
	$(if $(KERAS_BACKEND),KERAS_BACKEND=$(KERAS_BACKEND) )$(VENV)/bin/python -m convae.bench

# Binder's environment and memory (src/convae/binder.py): a fresh venv from binder/environment.yml's pip
# pins and binder/postBuild (conda-forge is not reachable everywhere), every chapter's kernel capped.
binder: data
	$(VENV)/bin/python -m convae.binder --python $(PYTHON) $(BINDER_ARGS)

clean:
	rm -rf book/_build grading/autograded grading/feedback grading/gradebook.db grading/grades.csv grading/log.txt grading/results.json .pytest_cache

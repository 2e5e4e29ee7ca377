# inferstack: every entry point a user or CI needs. Each target installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BUILD  := build

# Offline machines carry the AWS provider as a filesystem mirror; where TF_PLUGIN_MIRROR is
# set, Terraform reads it through a CLI config written here. Elsewhere the registry is used.
# The shared plugin cache is used even where no lock file records the package's checksums
# (module directories commit none): otherwise every `terraform init` reinstalls the cache
# entry, and a concurrent terraform run in another directory finds its provider gone.
TF_PLUGIN_CACHE := $(CURDIR)/$(BUILD)/terraform/plugin-cache
ifneq ($(strip $(TF_PLUGIN_MIRROR)),)
export TF_CLI_CONFIG_FILE := $(CURDIR)/$(BUILD)/terraform/terraformrc
else
export TF_PLUGIN_CACHE_DIR := $(TF_PLUGIN_CACHE)
export TF_PLUGIN_CACHE_MAY_BREAK_DEPENDENCY_LOCK_FILE := true
endif

.PHONY: help venv tf-config checkov lint fmt test test-unit bench model build rootfs sandbox up down demo clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,build]'
	touch $@

venv: $(STAMP) ## create .venv with the pinned dependencies

$(BUILD)/terraform/terraformrc: Makefile
	@mkdir -p $(dir $@) $(TF_PLUGIN_CACHE)
	@printf 'plugin_cache_dir = "%s"\nplugin_cache_may_break_dependency_lock_file = true\nprovider_installation {\n  filesystem_mirror {\n    path    = "%s"\n    include = ["registry.terraform.io/hashicorp/*"]\n  }\n  direct {\n    exclude = ["registry.terraform.io/hashicorp/*"]\n  }\n}\n' \
		"$(TF_PLUGIN_CACHE)" "$(TF_PLUGIN_MIRROR)" > $@

tf-config: $(if $(strip $(TF_PLUGIN_MIRROR)),$(BUILD)/terraform/terraformrc)
	@mkdir -p $(TF_PLUGIN_CACHE)

# checkov pins versions that conflict with the project's (boto3), so it lives in its own venv.
CHECKOV_VERSION := 3.3.30
CHECKOV_STAMP := $(BUILD)/tools/checkov/.installed-$(CHECKOV_VERSION)
$(CHECKOV_STAMP):
	$(PYTHON) -m venv $(BUILD)/tools/checkov
	$(BUILD)/tools/checkov/bin/pip install --quiet 'checkov==$(CHECKOV_VERSION)'
	touch $@

checkov: $(CHECKOV_STAMP) ## install checkov (terraform static analysis) in build/tools/checkov

lint: $(STAMP) ## ruff and terraform fmt
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	terraform fmt -check -recursive

fmt: $(STAMP) ## format Python and Terraform
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	terraform fmt -recursive

test: $(STAMP) tf-config checkov lint ## every test: unit, terraform, integration (emulator), localstack
	$(BIN)/pytest

test-unit: $(STAMP) ## unit tests only (fast)
	$(BIN)/pytest tests/unit

bench: $(STAMP) tf-config ## benchmarks: real-time and batch, printed and written to build/bench/
	$(BIN)/python tests/bench/bench_realtime.py
	$(BIN)/python tests/bench/bench_batch.py
	$(BIN)/python tests/bench/bench_batch_path.py
	$(BIN)/python tests/bench/peers/bench_peers.py
	$(BIN)/python tests/bench/cost.py

# WEIGHTS=imagenet (needs internet), random (default here: predictions are meaningless) or a
# local Keras weights file.
WEIGHTS ?= random
model: $(STAMP) ## build the ResNet-50 int8 bundle in build/model/resnet50-int8 (WEIGHTS=random|imagenet|FILE)
	$(BIN)/inferstack model build --weights $(WEIGHTS) --out $(BUILD)/model/resnet50-int8

build: $(STAMP) ## Lambda layers (x86_64, arm64) and function zips in build/dist/, reproducible
	$(BIN)/python layers/build.py

rootfs: $(STAMP) ## Debian trixie root file systems with python3.13 (x86_64, arm64) in build/rootfs/, built once
	$(BIN)/python -m inferstack.local.rootfs --arch x86_64 --arch arm64

sandbox: $(STAMP) ## what the local runner runs functions and workers in: this machine's root file system with awslambdaric, the worker's packages (once)
	$(BIN)/python -m inferstack.local.sandbox

# The local cloud: moto server + local runner, no Docker. MODEL=<bundle dir> deploys that
# bundle; IMAGES=<dir> adds photos to the demo; KEEP=1 leaves the demo stack running.
LOCAL_ARGS = $(if $(MODEL),--model $(MODEL))
up: $(STAMP) tf-config sandbox ## run the whole stack locally (emulator + runner); writes build/local/endpoints.json
	$(BIN)/inferstack local up $(LOCAL_ARGS)

down: $(STAMP) ## stop everything `make up` started and remove build/local
	$(BIN)/inferstack local down

demo: $(STAMP) tf-config sandbox ## photos through /predict and the batch path on the local stack (KEEP=1 keeps it up)
	$(BIN)/inferstack local demo $(LOCAL_ARGS) $(if $(IMAGES),--images $(IMAGES)) $(if $(KEEP),--keep)

clean: ## remove build outputs and the virtualenv
	rm -rf $(BUILD) $(VENV)

# make run   - the main job: data and weights, train, convert (and verify) the model
# make test  - every test: lint and types (make lint), the full suite, then the serving
#              tests again in a TensorFlow-free environment built from lambda_fn/requirements.txt
# Both create their virtual environments on first use and reuse them after.

PYTHON ?= python3
# the Keras backend that trains: tensorflow, jax or torch (conversion always uses TensorFlow on CPU)
KERAS_BACKEND ?= tensorflow
export KERAS_BACKEND
# GPU=1 on a machine with NVIDIA GPUs: installs the backend's CUDA build
GPU ?=
DEVICE := $(if $(GPU),gpu,cpu)
# the training recipe (train/config.py): auto = gpu if the backend sees a GPU, else cpu;
# also frozen (the head alone) and quick (150x150, minutes); TRAIN_FLAGS adds any flag
PRESET ?= auto
# the backbone to train (train/backbone.py; README's table): empty is the registry's default, Xception
BACKBONE ?=
TRAIN_FLAGS ?=
# a reviewed-labels file (python -m catalog.review writes it): its photos train, and half of them, held out,
# prove the promise at conversion (docs/shop-loop.md)
REVIEWED ?=
# the share of confident answers the bundle promises right (convert --target-precision; empty: convert's 0.98)
TARGET_PRECISION ?=
VENV := .venv
LAMBDA_VENV := .venv-lambda
# the course's runtime, tflite-runtime 2.14, has wheels up to Python 3.11 only
PYTHON311 ?= python3.11
TFLITE_VENV := .venv-tflite-runtime
# AWS's SAM CLI (sam build, sam local invoke, sam local start-api), apart: its pins are its own
SAM_VENV := .venv-sam
# the engines bench.inference compares LiteRT with (ONNX Runtime, OpenVINO): make engines; not needed by make test
ENGINES_VENV := .venv-engines
# the dataset's address is written once, in train/data.py
DATASET_URL := $(shell sed -n 's/^DATASET_URL = "\(.*\)"$$/\1/p' train/data.py)
# the last run train wrote: a link to artifacts/runs/<backbone>_vN
RUN := artifacts/runs/latest
BUNDLE ?= artifacts/bundle
# make image: the Lambda container image of the bundle's MODEL_VARIANT, with docker or podman;
# PLATFORM=linux/arm64 builds it for Graviton; BASE_IMAGE replaces AWS's base (a machine that cannot pull it)
IMAGE ?= fashion-classifier
# The variant each architecture serves, chosen from measurements (issue 43): on Lambda's x86_64 class (AVX2,
# no AVX-512) int8-dynamic is slower than float32 for both backbones (1 thread: Xception 297 against 234 ms,
# EfficientNet-Lite2 43.0 against 31.7 ms; LiteRT 2.3); arm64 (Graviton2) is not measured, and int8-full does not
# pass the gate, so float32 there too. Dockerfile.lambda's ARG and infra/template.yaml's ModelVariant default to
# these (the template has one default for both architectures): tests/infra/test_served_variant.py checks it.
SERVED_VARIANT_x86_64 := float32
SERVED_VARIANT_arm64 := float32
MODEL_VARIANT ?= $(SERVED_VARIANT_$(if $(filter %arm64,$(PLATFORM)),arm64,x86_64))
IMAGE_CONTEXT ?= .
PLATFORM ?=
BASE_IMAGE ?=
# make rie: the image under AWS's Runtime Interface Emulator, invoked at
# http://127.0.0.1:$(RIE_PORT)/2015-03-31/functions/function/invocations. HOST_NETWORK=1 runs it on the
# host's network, so that the function can fetch URLs served on the host's 127.0.0.1 (with
# RIE_ENV=ALLOW_PRIVATE_URLS=true); RIE_ENV passes any other setting (NAME=VALUE, space-separated)
RIE_PORT ?= 9000
RIE_API_PORT ?= 9001
HOST_NETWORK ?=
RIE_ENV ?=
HANDLER := $(shell sed -n 's/^CMD \["\([^"]*\)"\]/\1/p' Dockerfile.lambda)

.PHONY: run test lint system-packages data train convert serve image rie engines clean

run: train convert

# The tests run training under tensorflow and jax: both are always there (TensorFlow's
# CPU build unless its GPU build is asked for: the two cannot share a venv).
BACKEND_GROUPS := --group $(KERAS_BACKEND)-$(DEVICE) --group jax-cpu \
	$(if $(filter tensorflow-gpu,$(KERAS_BACKEND)-$(DEVICE)),,--group tensorflow-cpu)
$(VENV)/.installed-$(KERAS_BACKEND)-$(DEVICE): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -U pip
	$(VENV)/bin/pip install -q $(BACKEND_GROUPS) --group train --group lite-weights --group serve --group dev
	touch $@

# The reference the EfficientNet-Lite port is proven against (torch and the PyTorch port's architecture): only
# its test and bench.lite_port need it, so make run goes without and make test adds it to the same venv
$(VENV)/.installed-lite-reference: $(VENV)/.installed-$(KERAS_BACKEND)-$(DEVICE)
	$(VENV)/bin/pip install -q --group lite-reference
	touch $@

$(LAMBDA_VENV)/.installed: lambda_fn/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(LAMBDA_VENV)
	$(LAMBDA_VENV)/bin/pip install -q -U pip
	$(LAMBDA_VENV)/bin/pip install -q -r lambda_fn/requirements.txt --group serve-test
	touch $@

$(TFLITE_VENV)/.installed: pyproject.toml
	$(PYTHON311) -m venv $(TFLITE_VENV)
	$(TFLITE_VENV)/bin/pip install -q -U pip
	$(TFLITE_VENV)/bin/pip install -q --group serve-tflite-runtime --group serve-test
	touch $@

$(ENGINES_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(ENGINES_VENV)
	$(ENGINES_VENV)/bin/pip install -q -U pip
	$(ENGINES_VENV)/bin/pip install -q --group engines
	touch $@

engines: $(ENGINES_VENV)/.installed

$(SAM_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q -U pip
	$(SAM_VENV)/bin/pip install -q --group aws-sam
	touch $@

# The dataset and weights beside the project (../shared) when present;
# otherwise clone the dataset here and let Keras download the weights.
data:
	@if [ -z "$$FASHION_DATA" ] && [ ! -d ../shared/data/clothing-dataset-small ] && [ ! -d clothing-dataset-small ]; then \
		git clone --depth 1 $(DATASET_URL); fi

train: $(VENV)/.installed-$(KERAS_BACKEND)-$(DEVICE) data
	$(VENV)/bin/python -m train.train --preset $(PRESET) $(if $(BACKBONE),--backbone $(BACKBONE)) \
		$(if $(REVIEWED),--reviewed $(REVIEWED)) $(TRAIN_FLAGS)

convert: $(VENV)/.installed-$(KERAS_BACKEND)-$(DEVICE)
	KERAS_BACKEND=tensorflow $(VENV)/bin/python -m convert.convert $(RUN) --out $(BUNDLE) $(if $(REVIEWED),--reviewed $(REVIEWED)) \
		$(if $(TARGET_PRECISION),--target-precision $(TARGET_PRECISION))

# the engine is looked up when the image is built: infra/container-engine
image:
	ENGINE=$$(infra/container-engine) && $$ENGINE build -f $(IMAGE_CONTEXT)/Dockerfile.lambda \
		$(if $(PLATFORM),--platform $(PLATFORM)) $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) \
		--build-arg MODEL_VARIANT=$(MODEL_VARIANT) -t $(IMAGE) $(IMAGE_CONTEXT)

# AWS's base image (and the stand-in) start the RIE themselves when run outside Lambda, listening on 8080.
# On the host's network the RIE is the entry point instead, told where to listen, and starts the image's own.
rie: image
	ENGINE=$$(infra/container-engine) && $$ENGINE run --rm $(if $(PLATFORM),--platform $(PLATFORM)) \
		$(foreach setting,$(RIE_ENV),-e $(setting)) $(if $(HOST_NETWORK),--network host \
		--entrypoint /usr/local/bin/aws-lambda-rie $(IMAGE) --runtime-interface-emulator-address 127.0.0.1:$(RIE_PORT) \
		--runtime-api-address 127.0.0.1:$(RIE_API_PORT) /lambda-entrypoint.sh $(HANDLER),-p 127.0.0.1:$(RIE_PORT):8080 $(IMAGE))

serve: $(VENV)/.installed-$(KERAS_BACKEND)-$(DEVICE)
	MODEL_DIR=$(BUNDLE)/float32 $(VENV)/bin/python -m lambda_fn.local_server

lint: $(VENV)/.installed-$(KERAS_BACKEND)-$(DEVICE)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# chromium, chromedriver, podman, debootstrap: installed as root, else their tests skip (fail in CI)
system-packages:
	tests/system-packages.sh

test: system-packages $(VENV)/.installed-lite-reference lint $(LAMBDA_VENV)/.installed $(TFLITE_VENV)/.installed \
		$(SAM_VENV)/.installed
	$(VENV)/bin/python -m pytest
	FASHION_TF_FREE=1 $(LAMBDA_VENV)/bin/python -m pytest tests/lambda_fn -m "not tensorflow and not browser and not container"
	FASHION_TF_FREE=1 FASHION_RUNTIME=tflite-runtime $(TFLITE_VENV)/bin/python -m pytest tests/lambda_fn \
		-m "not tensorflow and not browser and not container"

clean:
	rm -rf artifacts $(VENV) $(LAMBDA_VENV) $(TFLITE_VENV) $(SAM_VENV) $(ENGINES_VENV)

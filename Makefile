# make run   - the main job: data and weights, train, convert (and verify) the model
# make test  - every test: the full suite, then the serving tests again in a
#              TensorFlow-free environment built from lambda_fn/requirements.txt
# Both create their virtual environments on first use and reuse them after.

PYTHON ?= python3
# the TensorFlow group: tf-gpu for NVIDIA GPUs (make run TF=tf-gpu)
TF ?= tf-cpu
VENV := .venv
LAMBDA_VENV := .venv-lambda
DATASET_URL := https://github.com/alexeygrigorev/clothing-dataset-small
# the reference model (see BENCHMARKS.md); TRAIN_FLAGS="--size 150" for a quick one
TRAIN_FLAGS ?= --size 299 --aug-views 4 --epochs 30 --learning-rate 0.0005
RUN := artifacts/runs/xception_v1
BUNDLE := artifacts/bundle

.PHONY: run test data train convert serve clean

run: train convert

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -U pip
	$(VENV)/bin/pip install -q --group $(TF) --group train --group serve --group dev
	touch $@

$(LAMBDA_VENV)/.installed: lambda_fn/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(LAMBDA_VENV)
	$(LAMBDA_VENV)/bin/pip install -q -U pip
	$(LAMBDA_VENV)/bin/pip install -q -r lambda_fn/requirements.txt --group serve-test
	touch $@

# The dataset and weights beside the project (../shared) when present;
# otherwise clone the dataset here and let Keras download the weights.
data:
	@if [ -z "$$FASHION_DATA" ] && [ ! -d ../shared/data/clothing-dataset-small ] && [ ! -d clothing-dataset-small ]; then \
		git clone --depth 1 $(DATASET_URL); fi

train: $(VENV)/.installed data
	$(VENV)/bin/python -m train.train $(TRAIN_FLAGS)

convert: $(VENV)/.installed
	$(VENV)/bin/python -m convert.convert $(RUN) --out $(BUNDLE)

serve: $(VENV)/.installed
	MODEL_DIR=$(BUNDLE)/float32 $(VENV)/bin/python -m lambda_fn.local_server

test: $(VENV)/.installed $(LAMBDA_VENV)/.installed
	$(VENV)/bin/python -m pytest
	FASHION_TF_FREE=1 $(LAMBDA_VENV)/bin/python -m pytest tests/lambda_fn -m "not tensorflow"

clean:
	rm -rf artifacts $(VENV) $(LAMBDA_VENV)

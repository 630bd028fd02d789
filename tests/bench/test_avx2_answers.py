"""The served variants answer the same with the AVX2 kernels Lambda's x86_64 runs (QEMU's Haswell) as here."""

import json

import numpy as np

from bench import avx2_answers
from harness.needs import need_program
from lambda_fn.preprocess import InputSpec
from lambda_fn.settings import DEFAULT_MAX_DECODED_BYTES

AGREEMENT = 1e-3  # max |logit difference|: summation order, nothing more


def test_qemus_haswell_reports_avx2_without_avx512():
    need_program(avx2_answers.EMULATOR, "qemu-user-static")
    assert avx2_answers.cpuid(avx2_answers.HASWELL) == {"avx2": True, "avx512f": False}


def test_each_variant_answers_the_same_with_the_avx2_kernels(tiny_bundles, tiny_dataset, tmp_path):
    need_program(avx2_answers.EMULATOR, "qemu-user-static")
    spec = InputSpec.from_json(json.loads((tiny_bundles / "float32" / "model.json").read_text())["input"])
    inputs = []
    for k, image in enumerate(sorted(tiny_dataset.joinpath("test").rglob("*.jpg"))[:2]):
        inputs.append(tmp_path / f"{k}.npy")
        np.save(inputs[-1], spec.model_input(image.read_bytes(), DEFAULT_MAX_DECODED_BYTES))
    for variant in ("float32", "int8-dynamic"):
        compared = avx2_answers.compare(tiny_bundles / variant, inputs)
        assert compared["images"] == 2 and compared["top1_agreement"] == 1.0, compared
        assert compared["max_logit_diff"] <= AGREEMENT, compared

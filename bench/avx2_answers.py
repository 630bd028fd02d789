"""Answers with Lambda's x86_64 kernels: each variant's logits with XNNPACK held to AVX2, beside this CPU's own.

    python -m bench.avx2_answers [--bundle artifacts/bundle] [--images 2]

XNNPACK picks its kernels when it starts, from what the CPUID instruction reports (AVX2, AVX-512, VNNI, AMX),
and has no switch, environment variable or CPU mask that holds it to fewer: its XNN_ENABLE_* settings are
fixed when it is compiled. Lambda's x86_64 promises AVX2, not AVX-512, so on an AVX-512 machine the
conversion's gates and every answer here were computed with kernels Lambda may not run. QEMU's user mode
(`qemu-x86_64-static -cpu Haswell`: the same Python, the same wheels) reports a Haswell's CPUID, AVX2 and FMA
without AVX-512, and executes the AVX2 kernels XNNPACK then picks; each image's logits are compared with this
CPU's own, in fresh processes of the serving environment. Emulation is hundreds of times slower: these are
answers, not speeds. Speeds on Lambda's class come only from a run on an AVX2 machine (bench.inference there,
whose result names its CPU class).
"""

import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from bench.common import parser, python_for_serving, sample_images
from bench.results import Field, Table, model_of, record
from harness import REPO
from lambda_fn.preprocess import InputSpec
from lambda_fn.settings import DEFAULT_MAX_DECODED_BYTES
from project.cpu_class import describe, this_machine

EMULATOR = "qemu-x86_64-static"  # Debian's qemu-user-static: make test installs it (tests/system-packages.sh)
HASWELL = (EMULATOR, "-cpu", "Haswell")  # AVX2 and FMA, no AVX-512: Lambda's documented x86_64 class
# what CPUID reports, as numpy's run-time dispatch reads it (XNNPACK reads the same instruction)
CPUID = "import json, numpy; f = numpy._core._multiarray_umath.__cpu_features__; print(json.dumps(f))"
FIELDS = [
    Field("variant", "variant"),
    Field("images", "images", "images"),
    Field("max_logit_diff", "max abs logit diff, AVX2 kernels vs this CPU's", "logit", "{:.1e}"),
    Field("top1_agreement", "top-1 agreement", "fraction", "{:.0%}"),
]


def served(prefix: tuple[str, ...], *args: str) -> str:
    """The last line a fresh serving-environment Python prints, run under prefix (an emulator, or nothing)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run([*prefix, str(python_for_serving()), *args], cwd=REPO, env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{' '.join(prefix) or 'natively'}: {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return out.stdout.strip().splitlines()[-1]


def cpuid(prefix: tuple[str, ...] = ()) -> dict[str, bool]:
    """AVX2 and AVX-512F as CPUID reports them to a process (under prefix)."""
    features = json.loads(served(prefix, "-c", CPUID))
    return {"avx2": features["AVX2"], "avx512f": features["AVX512F"]}


def logits(prefix: tuple[str, ...], variant: Path, x: Path) -> np.ndarray:
    """One invoke of the serving Model on the input saved at x (bench.engines: no warm-up, nothing timed)."""
    return np.array(
        json.loads(served(prefix, "-m", "bench.engines", "litert", str(variant), str(x), "1", "0", "0"))["logits"]
    )


def compare(variant: Path, inputs: list[Path]) -> dict:
    """The variant's logits on each input, natively and with the AVX2 kernels: the largest difference and how
    often the top class is the same."""
    pairs = [(logits((), variant, x), logits(HASWELL, variant, x)) for x in inputs]
    return {
        "variant": variant.name,
        "images": len(inputs),
        "max_logit_diff": max(float(np.abs(native - avx2).max()) for native, avx2 in pairs),
        "top1_agreement": sum(int(native.argmax() == avx2.argmax()) for native, avx2 in pairs) / len(pairs),
    }


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--images", type=int, default=2, help="validation images, each one invoke per variant")
    args = p.parse_args(argv)
    emulated = cpuid(HASWELL)
    if not emulated["avx2"] or emulated["avx512f"]:
        raise SystemExit(f"{' '.join(HASWELL)} does not report AVX2 without AVX-512F (CPUID: {emulated})")
    variants = sorted(d for d in args.bundle.iterdir() if (d / "model.tflite").is_file())
    spec = InputSpec.from_json(json.loads((args.bundle / "float32" / "model.json").read_text())["input"])
    with tempfile.TemporaryDirectory() as tmp:
        inputs = []
        for k, image in enumerate(sample_images(args.images)):
            inputs.append(Path(tmp) / f"{k}.npy")
            np.save(inputs[-1], spec.model_input(image.read_bytes(), DEFAULT_MAX_DECODED_BYTES))
        records = [compare(variant, inputs) for variant in variants]
    notes = [
        f"this CPU: {describe(this_machine())}; CPUID natively {cpuid()}, under `{' '.join(HASWELL)}` {emulated}",
        "answers only: the emulated kernels' speed says nothing about Lambda's",
    ]
    title = "Answers with the AVX2 kernels Lambda's x86_64 runs (emulated)"
    record(__spec__.name, argv, title, [Table("variants", FIELDS, records)], notes, model_of(args.bundle / "float32"))


if __name__ == "__main__":
    main()

"""The class of CPU a speed figure stands for: the instruction-set features that change LiteRT's kernels.

XNNPACK picks its kernels by what the CPU offers, so a latency measured with AVX-512, VNNI or AMX says little
about a CPU with AVX2 alone (issue 43: on AVX2 int8-dynamic is slower than float32, on AVX-512 + AMX twice as
fast). A result names the features of its class, read from /proc/cpuinfo; Lambda's classes are written here
once: x86_64 is documented for AVX2 (AWS builds its runtimes for Haswell; AVX-512 is not promised), and arm64
is Graviton2 (Neoverse N1: the dot-product instructions, no i8mm, no bf16).
"""

import os
import platform
from pathlib import Path

# The features that change the answer, per architecture, as /proc/cpuinfo spells them (flags on x86_64,
# Features on arm64: asimddp is the dot product).
FEATURES = {
    "x86_64": ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile"),
    "arm64": ("asimddp", "i8mm", "bf16"),
}
LAMBDA = {"x86_64": ("avx2",), "arm64": ("asimddp",)}  # Lambda's class: exactly these of FEATURES
LAMBDA_NAMES = {"x86_64": "AVX2 without AVX-512", "arm64": "Graviton2: dotprod, no i8mm, no bf16"}
ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}  # uname's names: Lambda's


def of_flags(arch: str, flags: list[str], model: str, cores: int, source: str) -> dict:
    """The class of a CPU with these flags: its arch (Lambda's name for it), model, cores and FEATURES it has."""
    if arch not in FEATURES:
        raise ValueError(f"no CPU classes are known for {arch!r}; known: {sorted(FEATURES)}")
    return {
        "arch": arch,
        "model": model,
        "cores": cores,
        "features": [f for f in FEATURES[arch] if f in flags],
        "source": source,
    }


def this_machine(cpuinfo: Path = Path("/proc/cpuinfo"), machine: str | None = None) -> dict:
    """This machine's class, from /proc/cpuinfo (machine: uname's name of the architecture)."""
    lines = cpuinfo.read_text().splitlines()

    def first(*names: str) -> str | None:
        return next((ln.split(":", 1)[1].strip() for ln in lines if ln.split(":")[0].strip() in names), None)

    machine = machine or platform.machine()
    arch = ARCHES.get(machine, machine)
    model = first("model name") or f"CPU part {first('CPU part')}"  # arm64 names its core by part number
    flags = (first("flags", "Features") or "").split()
    return of_flags(arch, flags, model, os.cpu_count() or 1, str(cpuinfo))


# What training's estimates tell apart (train/budget.py): a stage reaches a different share of the sgemm rate with
# AMX tiles, with AVX-512 and with AVX2 alone (issue 43: Lite2's fine-tuning 42%, about 59% and 24%)
FAMILIES = (("amx", "amx_tile"), ("avx512", "avx512f"), ("avx2", "avx2"))  # (name, the feature that makes it)


def family(cpu_class: dict) -> str:
    """'amx', 'avx512' or 'avx2' by the first of FAMILIES' features the class has; else its arch (arm64)."""
    return next((name for name, feature in FAMILIES if feature in cpu_class["features"]), cpu_class["arch"])


def this_family(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """This machine's family, or 'unknown' where /proc/cpuinfo cannot say (macOS, an architecture not in FEATURES)."""
    try:
        return family(this_machine(cpuinfo))
    except (OSError, ValueError):
        return "unknown"


def is_lambdas(cpu_class: dict, arch: str) -> bool:
    """Whether a figure measured on this class stands for Lambda's arch."""
    return cpu_class["arch"] == arch and set(cpu_class["features"]) == set(LAMBDA[arch])


def describe(cpu_class: dict) -> str:
    """The class in words, and whether it is one of Lambda's."""
    arch = cpu_class["arch"]
    features = ", ".join(cpu_class["features"]) or f"none of {', '.join(FEATURES[arch])}"
    lambdas = "Lambda's" if is_lambdas(cpu_class, arch) else f"not Lambda's {arch} class ({LAMBDA_NAMES[arch]})"
    return f"{arch} with {features}: {lambdas}"

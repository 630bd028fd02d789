"""A CPU's class: the features that change XNNPACK's kernels, read from /proc/cpuinfo, and whether it is Lambda's."""

import pytest

from project.cpu_class import FEATURES, describe, family, is_lambdas, this_family, this_machine

HASWELL = "model name\t: Intel(R) Xeon(R) CPU E5-2680 v3\nflags\t\t: fpu sse2 avx f16c fma avx2 bmi2\n"
SAPPHIRE = (
    "model name\t: Intel(R) Xeon(R) Platinum 8488C\nflags\t\t: avx avx2 fma avx512f avx512bw avx512_vnni "
    "avx512_bf16 amx_bf16 amx_tile amx_int8 avx_vnni\n"
)
EPYC_AVX512 = "model name\t: AMD EPYC 9R14\nflags\t\t: avx avx2 fma avx512f avx512_vnni avx512_bf16\n"
GRAVITON2 = "CPU implementer\t: 0x41\nCPU part\t: 0xd0c\nFeatures\t: fp asimd aes crc32 atomics asimdhp asimddp\n"
GRAVITON3 = "CPU part\t: 0xd40\nFeatures\t: fp asimd asimddp sve i8mm bf16 svebf16\n"


@pytest.mark.parametrize(
    ("cpuinfo", "machine", "arch", "features", "lambdas"),
    [
        (HASWELL, "x86_64", "x86_64", ["avx2"], True),
        (SAPPHIRE, "x86_64", "x86_64", ["avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile"], False),
        (EPYC_AVX512, "x86_64", "x86_64", ["avx2", "avx512f", "avx512_vnni", "avx512_bf16"], False),
        (GRAVITON2, "aarch64", "arm64", ["asimddp"], True),
        (GRAVITON3, "aarch64", "arm64", ["asimddp", "i8mm", "bf16"], False),
    ],
)
def test_a_cpus_class_and_whether_it_is_lambdas(tmp_path, cpuinfo, machine, arch, features, lambdas):
    (tmp_path / "cpuinfo").write_text(cpuinfo)
    cpu = this_machine(tmp_path / "cpuinfo", machine)
    assert (cpu["arch"], cpu["features"], is_lambdas(cpu, arch)) == (arch, features, lambdas)
    assert cpu["model"] and cpu["source"].endswith("cpuinfo")
    assert not is_lambdas(cpu, "arm64" if arch == "x86_64" else "x86_64")
    assert describe(cpu).endswith("Lambda's" if lambdas else ")")


def test_an_architecture_with_no_known_classes_is_refused(tmp_path):
    (tmp_path / "cpuinfo").write_text("isa\t\t: rv64imafdc\n")
    with pytest.raises(ValueError, match=r"no CPU classes are known for 'riscv64'; known: \['arm64', 'x86_64'\]"):
        this_machine(tmp_path / "cpuinfo", "riscv64")


def test_this_machine_has_a_class():
    cpu = this_machine()
    assert cpu["arch"] in FEATURES and set(cpu["features"]) <= set(FEATURES[cpu["arch"]]) and cpu["cores"] >= 1


@pytest.mark.parametrize(
    ("cpuinfo", "machine", "expected"),
    [
        (HASWELL, "x86_64", "avx2"),
        (SAPPHIRE, "x86_64", "amx"),
        (EPYC_AVX512, "x86_64", "avx512"),
        (GRAVITON2, "aarch64", "arm64"),
    ],
)
def test_the_family_training_estimates_by(tmp_path, cpuinfo, machine, expected):
    (tmp_path / "cpuinfo").write_text(cpuinfo)
    assert family(this_machine(tmp_path / "cpuinfo", machine)) == expected


def test_this_family_is_unknown_where_the_cpu_cannot_be_read(tmp_path):
    """macOS has no /proc/cpuinfo: training still estimates (by the reference family's shares, train/budget.py)."""
    assert this_family(tmp_path / "absent") == "unknown"

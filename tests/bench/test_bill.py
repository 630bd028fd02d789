"""The bill reads bench.inference's numbers by field, and prices an architecture only from its Lambda class."""

import pytest

from bench import bill, results
from bench.bill import LATENCY, NOT_MEASURED, dollars_per_million, projected_ms
from bench.results import Field, Table, load, record
from project.cpu_class import of_flags

LAMBDA_X86 = of_flags("x86_64", ["avx", "avx2", "fma"], "Intel Xeon (Haswell)", 2, "test")
XEON_AMX = of_flags("x86_64", ["avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile"], "Xeon", 2, "test")
GRAVITON2 = of_flags("arm64", ["asimd", "asimddp"], "CPU part 0xd0c", 2, "test")
# bench.inference's keys, under headings the bill must not depend on
FIELDS = [
    Field("engine", "Engine name"),
    Field("model", "Variant"),
    Field("threads", "Threads", "threads"),
    Field("median_ms", "Median latency in milliseconds", "ms"),
]
MEDIANS = {("float32", 1): 234.0, ("float32", 2): 141.0, ("int8-dynamic", 1): 297.0, ("int8-dynamic", 2): 153.0}


def bill_of(folder, cpu_class: dict):
    items = [{"engine": "LiteRT", "model": v, "threads": t, "median_ms": ms} for (v, t), ms in MEDIANS.items()]
    items.append({"engine": "OpenVINO", "model": "float32", "threads": 2, "median_ms": 1.0})  # not served: ignored
    machine = {**results.machine(), "cpu": cpu_class["model"], "cpu_class": cpu_class}
    record("inference", [], "Inference", [Table(LATENCY, FIELDS, items)], measured_on=machine, folder=folder)
    bill.main(["--results", str(folder)])
    return load(folder / "bill.json")


def test_bill_reads_numbers_by_field_not_by_heading(tmp_path, capsys):
    result = bill_of(tmp_path, LAMBDA_X86)
    settings = result.records["settings"].items
    assert {s["variant"] for s in settings} == {"float32", "int8-dynamic"}
    for s in settings:
        measured = {t: ms for (v, t), ms in MEDIANS.items() if v == s["variant"]}
        ms = projected_ms(measured, s["memory_mb"])
        assert s["projected_ms"] == round(ms)
        assert s["x86_64_dollars"] == round(dollars_per_million(ms, s["memory_mb"], "x86_64"), 2)
        assert s["arm64_dollars"] is None  # measured on x86_64: arm64 is not priced
    assert any("cheapest setting that answers within 300 ms: float32" in note for note in result.notes)


@pytest.mark.parametrize("cpu_class", [XEON_AMX, GRAVITON2], ids=["xeon-amx", "graviton2"])
def test_an_architecture_is_priced_only_from_its_lambda_class(tmp_path, capsys, cpu_class):
    settings = bill_of(tmp_path, cpu_class).records["settings"].items
    assert all(s["x86_64_dollars"] is None for s in settings)
    priced = [s["arm64_dollars"] is not None for s in settings]
    assert all(priced) if cpu_class is GRAVITON2 else not any(priced)
    if cpu_class is XEON_AMX:
        assert NOT_MEASURED in capsys.readouterr().out

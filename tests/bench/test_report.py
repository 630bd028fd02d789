"""BENCHMARKS.md is the rendering of bench/results/, and each result says what, where and how it was measured."""

import json
import re

import pytest

from bench import report
from bench.results import RESULTS, Field, Table, load, record, stored

MODEL = {"name": "old", "sha256": "a" * 64}
REQUIRED_MACHINE = {"cpu", "vector_extensions", "cores", "memory_gib", "cpu_class", "versions", "blas"}


def table(key: str, value) -> Table:
    return Table("figures", [Field(key, key)], [{key: value}])


def test_benchmarks_md_is_the_rendering_of_the_results():
    assert (report.BENCHMARKS).read_text() == report.render(), "run python -m bench.report"


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.json")), ids=lambda p: p.stem)
def test_a_result_names_its_machine_model_and_command(path):
    result = load(path)
    assert result.bench == path.stem.split(".")[0] and result.bench in report.ORDER
    assert result.command.startswith(f"python -m bench.{result.bench}")
    assert REQUIRED_MACHINE <= set(result.machine) and {"python", "numpy"} <= set(result.machine["versions"])
    assert result.when.endswith("UTC") and result.views
    assert {view.records for view in result.views} == set(result.records)
    assert set(result.machine["cpu_class"]) == {"arch", "model", "cores", "features", "source"}
    if result.model:
        assert set(result.model) == {"name", "sha256"} and len(result.model["sha256"]) == 64
    for name, records in result.records.items():  # a figure is a number in its unit, never a display string
        fields = [Field(key, key, unit) for key, unit in records.units.items()]
        stored(Table(name, fields, records.items))


def test_every_section_names_its_cpu_class():
    measured = [line for line in report.render().splitlines() if re.match(r"Measured \d{4}-\d\d-\d\d ", line)]
    assert len(measured) == len(list(RESULTS.glob("*.json")))  # a section per result
    assert all("; CPU class x86_64 with " in line or "; CPU class arm64 with " in line for line in measured)


def test_a_section_from_another_machine_or_model_says_so(tmp_path, capsys):
    reference = record("inference", ["--runs", "1"], "Inference", [table("a", 1)], model=MODEL, folder=tmp_path)
    elsewhere = {**reference.machine, "cpu": "Some Other CPU", "cores": 64}
    record("server", [], "End to end", [table("b", 2)], model=MODEL, measured_on=elsewhere, folder=tmp_path)
    record("cold_start", [], "Cold start", [table("c", 3)], model={**MODEL, "sha256": "b" * 64}, folder=tmp_path)
    text = report.render(tmp_path)
    assert "## Inference\n" in text
    assert "## End to end (on another machine: Some Other CPU, 64 cores)" in text
    assert "## Cold start (on another model: old)" in text
    assert "```sh\npython -m bench.inference --runs 1\n```" in text
    assert "| a |\n| --- |\n| 1 |" in text
    assert json.loads((tmp_path / "server.json").read_text())["machine"]["cpu"] == "Some Other CPU"


def test_a_result_with_no_place_in_the_report_is_refused(tmp_path):
    record("inference", [], "Inference", [table("a", 1)], folder=tmp_path)
    (tmp_path / "inference.json").rename(tmp_path / "unheard_of.json")
    with pytest.raises(SystemExit, match="unheard_of"):
        report.render(tmp_path)


def test_keyed_results_follow_their_bench(tmp_path):
    """Several results of one bench (make run per backbone) each get a section, after the bench's own."""
    for key in ("zeta", None, "alpha"):
        record("make_run", [], f"make run {key}", [table("a", 1)], folder=tmp_path, key=key)
    record("inference", [], "Inference", [table("a", 1)], folder=tmp_path)
    assert (tmp_path / "make_run.alpha.json").is_file()
    text = report.render(tmp_path)
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == ["## Inference", "## make run None", "## make run alpha", "## make run zeta"]

"""A result stores records of raw numbers in their units; a table is a view over them, applied when rendered."""

import copy
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.results import Field, Table, load, markdown, record, rows, stored

FIELDS = [
    Field("engine", "engine"),
    Field("median_ms", "median (ms)", "ms"),
    Field("share", "of sgemm", "fraction", "{:.0%}"),
    Field("vs_fastest", "vs fastest", "ratio", "{:.2f}x"),
    Field("diff", "logit diff", "logit", "{:.1e}"),
    Field("answer", "answer", "ms", absent="refused"),
]
ITEMS = [
    {"engine": "LiteRT", "median_ms": 61.2, "share": 0.8561, "vs_fastest": 1.0, "diff": 0.004, "answer": None},
    {"engine": "OpenVINO", "median_ms": 70.5, "share": None, "vs_fastest": 1.152, "diff": 3.2e-07, "answer": 12},
]


def test_a_table_is_a_view_over_the_records():
    """Records in, table out: the view writes each raw number as its column shows it and leaves them unchanged."""
    records, view = stored(Table("latency", FIELDS, copy.deepcopy(ITEMS)))
    assert rows(view, records) == [
        ["LiteRT", "61.2", "86%", "1.00x", "4.0e-03", "refused"],
        ["OpenVINO", "70.5", "—", "1.15x", "3.2e-07", "12"],
    ]
    assert records.items == ITEMS and records.units["share"] == "fraction"
    # another view of the same records: other columns, other headings, the same numbers
    other = copy.deepcopy(view)
    other.columns = [c for c in view.columns if c.key in ("vs_fastest", "engine")][::-1]
    assert rows(other, records) == [["1.00x", "LiteRT"], ["1.15x", "OpenVINO"]]


def test_a_result_stores_numbers_and_renders_them(tmp_path, capsys):
    record("inference", [], "Inference", [Table("latency", FIELDS, ITEMS, "Warm")], folder=tmp_path)
    stored_json = json.loads((tmp_path / "inference.json").read_text())
    assert stored_json["records"]["latency"]["items"] == ITEMS
    assert stored_json["records"]["latency"]["units"]["median_ms"] == "ms"
    text = markdown(load(tmp_path / "inference.json"))
    assert "**Warm**" in text and "| LiteRT | 61.2 | 86% | 1.00x | 4.0e-03 | refused |" in text
    assert "CPU class x86_64 with" in text or "CPU class arm64 with" in text


@pytest.mark.parametrize("display", ["85%", "1.00x", "4.0e-03", "-", "", True])
def test_a_number_field_refuses_a_display_string(display):
    with pytest.raises(ValueError, match=r"latency.share is in fraction: a number or None"):
        stored(Table("latency", FIELDS, [{**ITEMS[0], "share": display}]))


def test_an_undeclared_field_and_a_repeated_name_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"fields \['p99_ms'\] are not declared"):
        stored(Table("latency", FIELDS, [{**ITEMS[0], "p99_ms": 70.0}]))
    twice = [Table("latency", FIELDS, ITEMS), Table("latency", FIELDS, ITEMS)]
    with pytest.raises(ValueError, match="two tables named 'latency'"):
        record("inference", [], "Inference", twice, folder=tmp_path)


@given(st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53))
def test_any_number_survives_the_store_and_its_view(value):
    records, view = stored(Table("t", FIELDS, [{"median_ms": value, "share": value, "vs_fastest": value}]))
    back = json.loads(json.dumps(records.items))[0]
    assert back["median_ms"] == value
    cells = rows(view, records)[0]
    assert cells[1] == str(value) and cells[2] == f"{value:.0%}" and cells[3] == f"{value:.2f}x"
    assert not math.isnan(float(cells[3][:-1]))


@given(st.text())
def test_any_text_in_a_number_field_is_refused(text):
    with pytest.raises(ValueError, match="a number or None"):
        stored(Table("t", FIELDS, [{"median_ms": text}]))

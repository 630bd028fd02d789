"""Every request writes one log record, JSON, that is valid EMF: its numbers become CloudWatch metrics."""

import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.emf import UNITS, emf_problems, published_series
from lambda_fn import metrics
from lambda_fn.logs import JsonLines


def records_of(app, event, caplog, context=None) -> list[dict]:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="fashion"):
        app.lambda_handler(event, context)
    return [json.loads(JsonLines().format(r)) for r in caplog.records if r.name.startswith("fashion")]


def the_request(records: list[dict]) -> dict:
    (request,) = [r for r in records if r["message"] == "request"]  # one a request; urls entries have their own
    assert emf_problems(request) == []
    assert all(d["Namespace"] == metrics.NAMESPACE for d in request["_aws"]["CloudWatchMetrics"])
    assert request["ModelVariant"] == "float32" and request["FunctionName"] == "local"
    assert request["FunctionVersion"] == "$LATEST" and len(request["ModelDigest"]) == 12
    return request


def names_of(record: dict) -> list[str]:
    return [m["Name"] for d in record["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]]


@pytest.mark.parametrize(
    "name, status, counts",
    [
        ("direct_url.json", 200, {"images": 1, "client_errors": 0}),
        ("image.json", 200, {"images": 1}),
        ("api-image.json", 200, {"images": 1}),
        ("http_v2_json.json", 200, {"images": 1}),
        ("direct_urls.json", 200, {"images": 2, "failed_entries": 1}),  # two images and an ftp:// URL
        ("page.json", 200, {"images": 0}),
    ],
)
def test_every_kind_of_request_writes_one_emf_record(app, load_event, caplog, name, status, counts):
    request = the_request(records_of(app, load_event(name), caplog))
    assert request["status"] == status and request["duration_ms"] >= 0  # the page takes well under 0.1 ms
    assert {k: request[k] for k in counts} == counts
    assert request["confident"] + request["not_sure"] == request["images"]
    names = names_of(request)
    assert len(names) == len(set(names)), "a metric named twice in one record"
    assert {"duration_ms", "images", "client_errors", "server_errors", "upstream_errors", "cold_start"} <= set(names)
    assert ("inference_ms" in names) is (request["images"] > 0)
    # the model's measured share (the tiny model: nothing confident on its test split) times the images
    assert request["expected_not_sure"] == pytest.approx(request["images"] * app.NOT_SURE_SHARE, abs=1e-4)


def test_each_answered_label_is_counted_once_per_label(app, load_event, caplog):
    """A single answer's label is a dimension of its request's `images`; a urls batch's, of each entry's record
    (the request's record counts the batch as a whole), so every labelled image is counted once per label."""
    request = the_request(records_of(app, load_event("image.json"), caplog))
    assert (metrics.NAMESPACE, "images", frozenset({("FunctionName", "local"), ("label", request["label"])})) in (
        published_series(request)
    )
    records = records_of(app, load_event("direct_urls.json"), caplog)
    request = the_request(records)
    assert request["label"] is None and not any("label" in dict(d) for *_, d in published_series(request))
    entries = [r for r in records if r["message"] == "urls entry" and r["label"]]
    assert len(entries) == request["images"] == 2
    for entry in entries:
        assert emf_problems(entry) == [] and names_of(entry) == ["images"] and entry["images"] == 1
        assert {dict(d)["label"] for *_, d in published_series(entry)} == {entry["label"]}


def test_an_instance_counts_its_first_request_as_its_cold_start(app, caplog, monkeypatch):
    import itertools

    monkeypatch.setattr(metrics, "_starts", itertools.chain([1], itertools.repeat(0)))  # a fresh instance
    starts = [the_request(records_of(app, {"url": 42}, caplog))["cold_start"] for _ in range(3)]
    assert starts == [1, 0, 0]


@pytest.mark.parametrize("status, ours, upstream", [(500, 1, 0), (502, 0, 1), (504, 0, 1), (503, 1, 0), (413, 0, 0)])
def test_an_image_hosts_failures_are_not_counted_as_the_functions(status, ours, upstream):
    counts = metrics.outcome_counts(status, [{"error": {}}], False, None)
    assert (counts["server_errors"], counts["upstream_errors"]) == (ours, upstream)
    assert "expected_not_sure" not in counts  # no measured share: nothing to compare production with


def test_the_bundle_must_be_the_variant_the_stack_declares(app):
    meta = app.MODEL.meta
    with pytest.raises(ValueError, match="MODEL_VARIANT='int8-dynamic'.*bundle is 'float32'.*sam build and sam deploy"):
        metrics.Series.of({}, meta, "int8-dynamic")
    series = metrics.Series.of({"AWS_LAMBDA_FUNCTION_NAME": "f", "AWS_LAMBDA_FUNCTION_VERSION": "3"}, meta, "float32")
    assert series.fields() == {
        "FunctionName": "f",
        "FunctionVersion": "3",
        "ModelVariant": "float32",
        "ModelDigest": meta["tflite_sha256"][:12],
    }


def test_the_measured_share_serves_only_at_the_models_own_threshold(app):
    meta = app.MODEL.meta
    coverage = meta["parity"]["calibration"]["test"]["calibrated"]["confident_coverage"]
    assert metrics.expected_not_sure_share(meta, own_threshold=True) == 1 - coverage
    assert metrics.expected_not_sure_share(meta, own_threshold=False) is None
    assert metrics.expected_not_sure_share({"variant": "float32"}, own_threshold=True) is None


def test_errors_are_counted_by_class(app, caplog, monkeypatch):
    request = the_request(records_of(app, {"url": 42}, caplog))
    assert (request["status"], request["client_errors"], request["server_errors"]) == (400, 1, 0)

    def broken(*_):
        raise RuntimeError("a bug")

    monkeypatch.setitem(app.ANSWERS, "url", broken)
    request = the_request(records_of(app, {"url": "http://127.0.0.1/x.jpg"}, caplog))
    assert (request["status"], request["client_errors"], request["server_errors"]) == (500, 0, 1)


def test_the_checker_refuses_what_cloudwatch_would():
    series = metrics.Series("f", "1", "float32", "0123456789ab")
    good = metrics.embedded({"duration_ms": 1.0, "label": "hat"}, series)
    assert emf_problems(good) == []
    too_many = {
        **good,
        "_aws": {
            **good["_aws"],
            "CloudWatchMetrics": [
                {"Namespace": "N", "Dimensions": [], "Metrics": [{"Name": f"m{k}"} for k in range(101)]}
            ],
        },
    }
    assert emf_problems(too_many) and emf_problems({"duration_ms": 1}) == ["no _aws object"]
    wrong_unit = metrics.embedded({"duration_ms": 1.0}, series)
    wrong_unit["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = "Millis"
    assert emf_problems(wrong_unit) == ["metric 'duration_ms' has unit 'Millis'"]
    assert set(metrics.UNITS.values()) <= UNITS


@given(
    status=st.integers(100, 599),
    confident=st.lists(st.sampled_from([True, False, None]), max_size=12),
    batch=st.booleans(),
    share=st.one_of(st.none(), st.floats(0, 1)),
)
def test_every_status_counts_in_one_class_at_most(status, confident, batch, share):
    answers = [{"label": "hat", "confident": c} if c is not None else {"error": {}} for c in confident]
    counts = metrics.outcome_counts(status, answers, batch, share)
    classes = counts["client_errors"] + counts["server_errors"] + counts["upstream_errors"]
    assert classes == (status >= 400)
    assert counts["confident"] + counts["not_sure"] == counts["images"] == sum(c is not None for c in confident)
    assert ("expected_not_sure" in counts) is (share is not None)


@given(
    numbers=st.dictionaries(st.sampled_from(sorted(metrics.UNITS)), st.integers(0, 10**6) | st.floats(0, 1e6)),
    label=st.one_of(st.none(), st.sampled_from(["hat", "t-shirt"])),
    version=st.sampled_from(["$LATEST", "1", "42"]),
)
def test_any_record_embeds_as_valid_emf_with_each_metric_named_once(numbers, label, version):
    series = metrics.Series("fashion", version, "float32", "0123456789ab")
    record = metrics.embedded({**numbers, "label": label, "status": 200}, series)
    names = names_of(record) if record["_aws"]["CloudWatchMetrics"] else []
    assert emf_problems(record) == [] or not numbers
    assert sorted(names) == sorted(numbers)
    entry = metrics.embedded_entry({"label": label, "status": 200}, series)
    assert ("_aws" in entry) is (label is not None) and (label is None or emf_problems(entry) == [])

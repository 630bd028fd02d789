"""Every request writes one log record, JSON, that is valid EMF: its numbers become CloudWatch metrics."""

import json
import logging

import pytest

from harness.emf import UNITS, emf_problems
from lambda_fn import metrics
from lambda_fn.logs import JsonLines


def records_of(app, event, caplog, context=None) -> list[dict]:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="fashion"):
        app.lambda_handler(event, context)
    return [json.loads(JsonLines().format(r)) for r in caplog.records if r.name == "fashion"]


def the_request(records: list[dict]) -> dict:
    (request,) = [r for r in records if "_aws" in r]  # one EMF record a request; urls entries are plain JSON
    assert request["message"] == "request" and emf_problems(request) == []
    directive = request["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == metrics.NAMESPACE and directive["Dimensions"] == [list(metrics.DIMENSIONS)]
    assert request["ModelVariant"] == "float32" and request["FunctionName"] == metrics.FUNCTION_NAME
    return request


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
    assert request["status"] == status and request["duration_ms"] > 0
    assert {k: request[k] for k in counts} == counts
    assert request["confident"] + request["not_sure"] == request["images"]
    names = {m["Name"] for m in request["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"duration_ms", "images", "client_errors", "server_errors"} <= names
    assert ("inference_ms" in names) is (request["images"] > 0)


def test_errors_are_counted_by_class(app, caplog, monkeypatch):
    request = the_request(records_of(app, {"url": 42}, caplog))
    assert (request["status"], request["client_errors"], request["server_errors"]) == (400, 1, 0)

    def broken(*_):
        raise RuntimeError("a bug")

    monkeypatch.setitem(app.ANSWERS, "url", broken)
    request = the_request(records_of(app, {"url": "http://127.0.0.1/x.jpg"}, caplog))
    assert (request["status"], request["client_errors"], request["server_errors"]) == (500, 0, 1)


def test_the_checker_refuses_what_cloudwatch_would():
    good = metrics.embedded({"duration_ms": 1.0, "label": "hat"}, "float32")
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
    wrong_unit = metrics.embedded({"duration_ms": 1.0}, "float32")
    wrong_unit["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = "Millis"
    assert emf_problems(wrong_unit) == ["metric 'duration_ms' has unit 'Millis'"]
    assert set(metrics.UNITS.values()) <= UNITS

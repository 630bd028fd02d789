"""The handler on checked-in events, and every user error, through lambda_fn.app.lambda_handler."""

import base64
import dataclasses
import json
import logging

import numpy as np
import pytest

from lambda_fn.events import is_http
from lambda_fn.logs import JsonLines
from lambda_fn.settings import DEFAULT_MAX_DECODED_BYTES

EVENT_FILES = [
    "direct_url.json",
    "direct_urls.json",
    "image.json",
    "rest_v1_json.json",
    "http_v2_json.json",
    "api-image.json",
]


def call(app, event):
    """Invoke; returns (status, body) whichever way the event came in."""
    response = app.lambda_handler(event, None)
    if is_http(event):
        assert response["headers"]["Content-Type"] == "application/json"
        assert response["headers"]["Access-Control-Allow-Origin"] == "*"
        return response["statusCode"], json.loads(response["body"])
    return response.get("error", {}).get("status", 200), response


def expected_prediction(app, image_bytes: bytes) -> dict:
    """The same image straight through the interpreter, without the handler."""
    x = app.MODEL.input_of(image_bytes, DEFAULT_MAX_DECODED_BYTES)
    logits = app.MODEL.logits(x)[0].astype(np.float64) / app.MODEL.meta["calibration"]["temperature"]
    p = np.exp(logits - logits.max())
    return dict(zip(app.MODEL.labels, p / p.sum(), strict=True))


def check_prediction(app, body: dict, image_bytes: bytes):
    expected = expected_prediction(app, image_bytes)
    got = {row["label"]: row["probability"] for row in body["probabilities"]}
    assert list(got) == sorted(expected, key=lambda k: -expected[k])  # highest first, every class
    assert body["label"] == max(expected, key=lambda k: expected[k])
    assert body["probability"] == got[body["label"]]
    assert got == pytest.approx(expected, abs=1e-6)
    assert sum(got.values()) == pytest.approx(1, abs=1e-5)
    # calibrated with model.json's temperature; confident when it clears the model's own threshold
    assert body["confident"] is bool(max(expected.values()) >= app.MODEL.meta["calibration"]["min_confidence"])
    assert ("candidates" in body) is not body["confident"]


@pytest.mark.parametrize("name", EVENT_FILES)
def test_checked_in_events(app, load_event, image_files, name):
    event = load_event(name)
    status, body = call(app, event)
    assert status == 200, body
    calibration = app.MODEL.meta["calibration"]
    assert body["model"] == {
        "name": app.MODEL.meta["name"],
        "sha256": app.MODEL.meta["tflite_sha256"],
        "min_confidence": calibration["min_confidence"],
        "target_precision": calibration["target_precision"],
    }
    if name == "direct_urls.json":
        pants, hat, ftp = body["results"]
        check_prediction(app, pants, image_files["pants.jpg"].read_bytes())
        check_prediction(app, hat, image_files["hat.jpg"].read_bytes())
        assert ftp["url"] == "ftp://example.com/shirt.jpg" and ftp["error"]["code"] == "unsupported_url_scheme"
    elif "image" in name:
        raw = event.get("image") or event["body"]
        check_prediction(app, body, base64.b64decode(raw))
    else:
        check_prediction(app, body, image_files["pants.jpg"].read_bytes())


@pytest.mark.parametrize(
    "event, code, words",
    [
        ({}, "invalid_request", "give exactly one of: url"),
        ({"url": "http://x/a.jpg", "image": "AAAA"}, "invalid_request", "give exactly one of"),
        ({"uri": "http://x/a.jpg"}, "invalid_request", "unknown field(s) 'uri'"),
        ({"url": 42}, "invalid_request", "url must be a non-empty string"),
        ({"urls": "http://x/a.jpg"}, "invalid_request", "urls must be a non-empty list"),
        ({"urls": ["http://x/a.jpg"] * 11}, "invalid_request", "urls has 11 items; at most 10"),
        ({"image": "not base64!"}, "invalid_request", "image is not valid base64"),
        ([1, 2], "invalid_request", "expected a JSON object"),
        ({"url": "file:///etc/passwd"}, "unsupported_url_scheme", "'file' is not supported; use http or https"),
        ({"url": "ftp://example.com/a.jpg"}, "unsupported_url_scheme", "'ftp' is not supported"),
        ({"url": "http:///nohost.jpg"}, "invalid_url", "has no host"),
        ({"url": "http://host.invalid/a.jpg"}, "invalid_url", "could not be resolved"),
    ],
)
def test_bad_direct_events(app, event, code, words, names_do_not_resolve):
    status, body = call(app, event)
    assert body["error"]["code"] == code and words in body["error"]["message"]
    assert status == body["error"]["status"] and 400 <= status < 500


def http_event(load_event, body, content_type="application/json", method="POST", path="/predict", b64=False):
    event = load_event("http_v2_json.json")
    event["headers"]["content-type"] = content_type
    event["requestContext"]["http"].update(method=method, path=path)
    event["rawPath"] = path
    event["body"], event["isBase64Encoded"] = body, b64
    return event


@pytest.mark.parametrize(
    "kwargs, status, code",
    [
        ({"body": "{not json"}, 400, "invalid_json"),
        ({"body": '{"url": 1}'}, 400, "invalid_request"),
        ({"body": "hello", "content_type": "text/plain"}, 415, "unsupported_media_type"),
        ({"body": "{}", "path": "/admin"}, 404, "not_found"),
        ({"body": "{}", "method": "GET"}, 405, "method_not_allowed"),
        (
            {"body": base64.b64encode(b"not an image").decode(), "content_type": "image/png", "b64": True},
            422,
            "not_an_image",
        ),
    ],
)
def test_bad_http_requests(app, load_event, kwargs, status, code):
    got_status, body = call(app, http_event(load_event, **kwargs))
    assert (got_status, body["error"]["code"]) == (status, code)


def test_body_over_the_limit(app, load_event, monkeypatch):
    small = dataclasses.replace(app.SETTINGS, fetch=dataclasses.replace(app.SETTINGS.fetch, max_bytes=1000))
    monkeypatch.setattr(app, "SETTINGS", small)
    event = http_event(load_event, base64.b64encode(bytes(2000)).decode(), "image/jpeg", b64=True)
    assert call(app, event)[1]["error"]["code"] == "payload_too_large"
    assert call(app, {"image": base64.b64encode(bytes(2000)).decode()})[1]["error"]["code"] == "payload_too_large"


def test_unexpected_failure_is_a_logged_500_and_serving_goes_on(app, load_event, monkeypatch, caplog):
    def broken(x):
        raise RuntimeError("interpreter exploded")

    with monkeypatch.context() as patch:
        patch.setattr(app.MODEL, "logits", broken)
        response = app.lambda_handler(load_event("api-image.json"), type("Ctx", (), {"aws_request_id": "req-42"}))
    body = json.loads(response["body"])
    assert response["statusCode"] == 500 and body["error"]["request_id"] == "req-42"
    assert "interpreter exploded" not in response["body"]  # the traceback goes to the log, not the caller
    assert "req-42" in caplog.text and "RuntimeError: interpreter exploded" in caplog.text
    assert call(app, load_event("api-image.json"))[0] == 200


def test_one_structured_log_line_per_request(app, load_event, caplog):
    with caplog.at_level(logging.INFO, logger="fashion"):
        app.lambda_handler(load_event("direct_url.json"), type("Ctx", (), {"aws_request_id": "req-7"}))
    (logged,) = [r for r in caplog.records if r.name == "fashion.metrics"]
    record = json.loads(JsonLines().format(logged))  # as the local server prints it, and awslambdaric in AWS
    assert record["message"] == "request" and record["level"] == "INFO"
    assert record["requestId"] == "req-7" and record["input"] == "url" and record["status"] == 200
    assert record["bytes"] > 0 and record["label"] in app.MODEL.labels
    assert all(record[k] > 0 for k in ("fetch_ms", "preprocess_ms", "inference_ms"))


def test_a_urls_batch_logs_each_entry_and_counts_them(app, load_event, caplog):
    """direct_urls.json: two images and an ftp:// URL. One record per entry, then the request's, which counts."""
    event = load_event("direct_urls.json")
    with caplog.at_level(logging.INFO, logger="fashion"):
        app.lambda_handler(event, type("Ctx", (), {"aws_request_id": "req-9"}))
    records = [json.loads(JsonLines().format(r)) for r in caplog.records if r.name == "fashion.metrics"]
    entries = [r for r in records if r["message"] == "urls entry"]
    (request,) = [r for r in records if r["message"] == "request"]
    assert [e["url"] for e in entries] == event["urls"] and all(e["requestId"] == "req-9" for e in entries)
    assert [e["status"] for e in entries] == [200, 200, 400]
    assert entries[2]["code"] == "unsupported_url_scheme" and entries[0]["label"] in app.MODEL.labels
    assert entries[0]["fetch_ms"] > 0 and entries[0]["inference_ms"] > 0
    assert request["succeeded"] == 2 and request["failed"] == 1 and request["status"] == 200


def test_each_event_source_is_recognised_once():
    from lambda_fn import events

    assert events.source_of({"version": "2.0", "rawPath": "/"}).name == "api-gateway"
    assert events.source_of({"httpMethod": "GET", "path": "/"}).name == "api-gateway"
    assert events.source_of({"url": "https://example.com/a.jpg"}).name == "direct"
    assert events.source_of(["not", "an", "object"]) is events.DIRECT  # and refused there, by name
    assert events.source_of(object()) is events.DIRECT and events.DIRECT not in events.SOURCES


def test_every_kind_of_request_has_an_answer(app):
    from lambda_fn import events

    assert set(app.ANSWERS) == set(events.Kind)


def test_line_wrapped_base64_is_accepted(app, load_event):
    raw = load_event("image.json")["image"]
    wrapped = "\n".join(raw[i : i + 76] for i in range(0, len(raw), 76))  # as the base64 command writes it
    assert call(app, {"image": wrapped})[1]["label"] == call(app, {"image": raw})[1]["label"]

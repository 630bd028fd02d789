"""The image: its CMD imports and answers (in the TensorFlow-free env too); built and run under AWS's RIE."""

import importlib
import json

import pytest

from tests.conftest import missing
from tests.container.images import build_image, ensure_base, find_engine, invoke_rie, remove, run_under_rie
from tests.dockerfile import handler


def test_cmd_handler_imports_and_answers(app, load_event):
    module_name, function_name = handler().rsplit(".", 1)
    function = getattr(importlib.import_module(module_name), function_name)
    body = function(load_event("direct_url.json"), None)
    assert body["label"] in app.MODEL.labels and len(body["probabilities"]) == len(app.MODEL.labels)


@pytest.fixture(scope="module")
def image(tiny_bundle, tmp_path_factory) -> tuple[str, str]:
    """(engine, tag): the image of the tiny bundle, built by make image on AWS's base or the stand-in."""
    try:
        engine = find_engine()
    except RuntimeError as err:
        missing(str(err))
    print(f"\nbase image: {ensure_base(engine)}; engine: {engine}")
    build_image("fashion-classifier:test", tiny_bundle, tmp_path_factory.mktemp("context"))
    return engine, "fashion-classifier:test"


@pytest.mark.container
def test_the_image_answers_under_aws_runtime_interface_emulator(image, app, load_event):
    """AWS's own RIE (in AWS's base image, or baked into the stand-in from the aws-sam-cli wheel) runs the image;
    every answer is the in-process handler's; its log holds the RIE's REPORT lines and JSON records only."""
    engine, tag = image
    container, url = run_under_rie(engine, tag, handler(), "ALLOW_PRIVATE_URLS=true", "AWS_LAMBDA_LOG_FORMAT=JSON")
    events = {
        "url": load_event("direct_url.json"),
        "urls": load_event("direct_urls.json"),
        "image": load_event("direct_image.json"),
        "api-jpeg": load_event("http_v2_image.json"),  # API Gateway v2, a raw JPEG body
        "page": load_event("http_v2_page.json"),
        "unknown-field": {"picture": "x"},
        "bad-scheme": {"url": "gopher://example.com/hat.jpg"},
        "not-base64": {"image": "%%%"},
    }
    try:
        answers = {name: invoke_rie(url, event) for name, event in events.items()}
    finally:
        logs = remove(engine, container)
    for name, event in events.items():
        assert answers[name] == app.lambda_handler(event, None), (name, logs)
    assert answers["url"]["label"] in app.MODEL.labels
    assert json.loads(answers["api-jpeg"]["body"])["label"] in app.MODEL.labels
    assert answers["unknown-field"]["error"]["status"] == 400
    lines = logs.splitlines()
    assert sum(line.startswith("REPORT RequestId: ") for line in lines) == len(events), logs  # the RIE's own
    ours = [line for line in lines if not line.startswith(("START RequestId", "END RequestId", "REPORT RequestId"))]
    records = [json.loads(line) for line in ours]  # every line the function writes is JSON, the runtime's too
    requests = [r for r in records if r.get("message") == "request"]
    assert len(requests) == len(events) and {r.get("input") for r in requests} >= {"url", "urls", "image", "upload"}

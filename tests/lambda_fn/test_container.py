"""The image: its CMD imports and answers (in the TensorFlow-free env too); built and run in a real engine."""

import importlib
import json

import pytest

from tests.conftest import missing
from tests.container.images import build_image, ensure_base, find_engine, remove, run_container
from tests.dockerfile import instructions


def test_cmd_handler_imports_and_answers(app, load_event):
    (cmd,) = [json.loads(rest) for op, rest in instructions() if op == "CMD"]
    module_name, function_name = cmd[0].rsplit(".", 1)
    handler = getattr(importlib.import_module(module_name), function_name)
    body = handler(load_event("direct_url.json"), None)
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
def test_the_image_answers_as_lambda_runs_it(image, runtime_api, app, load_event):
    """The container's awslambdaric polls a Runtime API served here; its answers are the in-process ones."""
    engine, tag = image
    container = run_container(engine, tag, runtime_api.address, "ALLOW_PRIVATE_URLS=true")
    events = {
        "url": load_event("direct_url.json"),
        "image": load_event("direct_image.json"),
        "api-jpeg": load_event("http_v2_image.json"),  # API Gateway v2, a raw JPEG body
        "page": load_event("http_v2_page.json"),
        "unknown-field": {"picture": "x"},
        "bad-scheme": {"url": "gopher://example.com/hat.jpg"},
        "not-base64": {"image": "%%%"},
    }
    try:
        answers = {name: runtime_api.invoke(f"req-{name}", event, timeout=120) for name, event in events.items()}
    finally:
        logs = remove(engine, container)
    for name, event in events.items():
        path, body = answers[name]
        assert path == f"/2018-06-01/runtime/invocation/req-{name}/response", (name, path, body, logs)
        assert body == app.lambda_handler(event, type("Ctx", (), {"aws_request_id": f"req-{name}"})), name
    assert answers["url"][1]["label"] in app.MODEL.labels
    assert json.loads(answers["api-jpeg"][1]["body"])["label"] in app.MODEL.labels
    assert answers["unknown-field"][1]["error"]["status"] == 400

"""The image's CMD, taken from Dockerfile.lambda, imports and answers (in the TensorFlow-free env too)."""

import importlib
import json

from tests.dockerfile import instructions


def test_cmd_handler_imports_and_answers(app, load_event):
    (cmd,) = [json.loads(rest) for op, rest in instructions() if op == "CMD"]
    module_name, function_name = cmd[0].rsplit(".", 1)
    handler = getattr(importlib.import_module(module_name), function_name)
    body = handler(load_event("direct_url.json"), None)
    assert body["label"] in app.MODEL.labels and len(body["probabilities"]) == len(app.MODEL.labels)

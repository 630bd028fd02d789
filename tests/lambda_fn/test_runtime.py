"""The container's real entry point: awslambdaric, talking to a Runtime API served here on 127.0.0.1."""

import json
import os
import subprocess
import sys

from tests.conftest import REPO

HANDLER = "lambda_fn.app.lambda_handler"  # the CMD of Dockerfile.lambda


def test_awslambdaric_runs_the_handler_and_posts_its_answer(tiny_bundle, image_server, runtime_api):
    env = {
        **os.environ,
        "AWS_LAMBDA_RUNTIME_API": runtime_api.address,
        "PYTHONPATH": str(REPO),
        "MODEL_DIR": str(tiny_bundle),
        "ALLOW_PRIVATE_URLS": "true",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",  # what LoggingConfig LogFormat: JSON sets in AWS
    }
    runtime = subprocess.Popen(
        [sys.executable, "-m", "awslambdaric", HANDLER],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        first = runtime_api.invoke("req-1", {"url": f"{image_server}/images/hat.jpg"}, timeout=120)
        second = runtime_api.invoke("req-2", {"url": "gopher://example.com/hat.jpg"})
    finally:
        runtime.kill()
        output = runtime.communicate()[0]
    path, body = first
    assert path == "/2018-06-01/runtime/invocation/req-1/response", (path, output)
    assert body["label"] in json.loads((tiny_bundle / "model.json").read_text())["labels"]
    assert len(body["probabilities"]) == 3
    path, body = second  # a user error is an answer, not a function error, and the runtime goes on
    assert path == "/2018-06-01/runtime/invocation/req-2/response"
    assert body["error"]["code"] == "unsupported_url_scheme"
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    (first_record,) = [r for r in records if r.get("message") == "request" and r.get("requestId") == "req-1"]
    assert first_record["status"] == 200 and first_record["input"] == "url"  # fields at top level, from awslambdaric

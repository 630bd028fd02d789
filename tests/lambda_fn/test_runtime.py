"""The image's entry point outside the image: awslambdaric under AWS's own Runtime Interface Emulator (the
program the aws-sam-cli wheel ships), on this machine's Python, so in the TensorFlow-free environments too."""

import json
import os
import subprocess
import sys

from harness import REPO
from harness.containers import INVOCATIONS, free_port, invoke_rie
from harness.dockerfile import handler
from harness.needs import missing
from harness.sam import rie_on_host
from harness.servers import wait_for


def test_awslambdaric_under_the_rie_runs_the_handler_and_goes_on(tiny_bundle, image_server):
    rie = rie_on_host()
    if rie is None:
        missing("AWS's RIE is not here: make test builds .venv-sam, whose aws-sam-cli wheel ships it")
    port, api_port = free_port(), free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "MODEL_DIR": str(tiny_bundle),
        "ALLOW_PRIVATE_URLS": "true",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",  # what LoggingConfig LogFormat: JSON sets in AWS
    }
    command = [str(rie), "--runtime-interface-emulator-address", f"127.0.0.1:{port}"]
    command += ["--runtime-api-address", f"127.0.0.1:{api_port}", sys.executable, "-m", "awslambdaric", handler()]
    runtime = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(port)
        url = f"http://127.0.0.1:{port}{INVOCATIONS}"
        first = invoke_rie(url, {"url": f"{image_server}/images/hat.jpg"})
        second = invoke_rie(url, {"url": "gopher://example.com/hat.jpg"})
        third = invoke_rie(url, {"url": f"{image_server}/images/pants.jpg"})
    finally:
        runtime.kill()
        output = runtime.communicate()[0]
    labels = json.loads((tiny_bundle / "model.json").read_text())["labels"]
    assert first["label"] in labels and len(first["probabilities"]) == 3, output
    assert second["error"]["code"] == "unsupported_url_scheme"  # a user error is an answer, not a function error
    assert third["label"] in labels, output  # and the runtime goes on
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    requests = [r for r in records if r.get("message") == "request"]
    assert [r["status"] for r in requests] == [200, 400, 200], output
    assert requests[0]["input"] == "url" and requests[0]["requestId"]  # fields at top level, from awslambdaric

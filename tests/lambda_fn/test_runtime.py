"""The container's real entry point: awslambdaric, talking to a Runtime API served here on 127.0.0.1."""

import json
import os
import queue
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.conftest import REPO

HANDLER = "lambda_fn.app.lambda_handler"  # the CMD of Dockerfile.lambda


class RuntimeAPI(BaseHTTPRequestHandler):
    """The Lambda Runtime API, as much as one invocation needs: hand out the event, take the answer."""

    protocol_version = "HTTP/1.1"
    events: queue.Queue
    posted: queue.Queue

    def do_GET(self):
        assert self.path == "/2018-06-01/runtime/invocation/next", self.path
        request_id, event = self.events.get()  # blocks (as Lambda does) until there is work
        body = json.dumps(event).encode()
        self.send_response(200)
        for name, value in {
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": "32503680000000",
            "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:eu-west-1:123456789012:function:fashion",
            "Lambda-Runtime-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793",
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
        }.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.posted.put((self.path, json.loads(data or b"null")))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):
        pass


def test_awslambdaric_runs_the_handler_and_posts_its_answer(tiny_bundle, image_server):
    events: queue.Queue[tuple[str, Any]] = queue.Queue()  # (request id, event) to hand out
    posted: queue.Queue[tuple[str, Any]] = queue.Queue()  # (path, body) the runtime posted back
    handler = type("Handler", (RuntimeAPI,), {"events": events, "posted": posted})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        **os.environ,
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_port}",
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
        events.put(("req-1", {"url": f"{image_server}/images/hat.jpg"}))
        events.put(("req-2", {"url": "gopher://example.com/hat.jpg"}))
        first, second = posted.get(timeout=120), posted.get(timeout=60)
    finally:
        runtime.kill()
        output = runtime.communicate()[0]
        server.shutdown()
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

"""Serve the function on localhost without Docker, with the routes of the RIE and of API Gateway.

    MODEL_DIR=artifacts/bundle/float32 python -m lambda_fn.local_server   # http://127.0.0.1:9000

POST /2015-03-31/functions/function/invocations   the event as the body, as the Runtime
                                                   Interface Emulator takes it (curl, boto3
                                                   with endpoint_url=...)
POST /predict                                      as API Gateway's HTTP API: a JSON body or
                                                   a raw image, turned into a payload v2 event

Port 9000 is the one the README maps the container's RIE to, so every
client command works against either. Local development usually fetches
images from a local server: set ALLOW_PRIVATE_URLS=true for that.
"""

import argparse
import base64
import json
import logging
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lambda_fn.app import lambda_handler  # loads the model now, as Lambda's init does

INVOCATIONS = "/2015-03-31/functions/function/invocations"
MAX_BODY = 16 * 1024 * 1024  # more than any limit behind it: API Gateway's is 10 MB, Lambda's 6 MB


@dataclass
class LocalContext:
    """The attributes of Lambda's context object that the handler reads."""
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_name: str = "function"


def http_event(method: str, path: str, headers: dict, body: bytes) -> dict:
    """An API Gateway HTTP API (payload format 2.0) proxy event."""
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "headers": {k.lower(): v for k, v in headers.items()},
        "requestContext": {"http": {"method": method, "path": path}, "requestId": str(uuid.uuid4())},
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.route("POST")

    def do_GET(self):
        self.route("GET")

    def route(self, method: str):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self.reply(413, {"error": {"status": 413, "code": "payload_too_large",
                                              "message": f"the body is over {MAX_BODY} bytes"}})
        body = self.rfile.read(length)
        path = self.path.split("?")[0]
        if path == INVOCATIONS and method == "POST":
            try:
                event = json.loads(body or b"{}")
            except ValueError as err:
                return self.reply(400, {"error": {"status": 400, "code": "invalid_json",
                                                  "message": f"the event is not valid JSON ({err})"}})
            return self.reply(200, lambda_handler(event, LocalContext()))
        response = lambda_handler(http_event(method, path, dict(self.headers), body), LocalContext())
        self.reply(response["statusCode"], json.loads(response["body"]), response["headers"])

    def reply(self, status: int, body: dict, headers: dict | None = None):
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {"Content-Type": "application/json"}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):  # the handler logs each request as JSON already
        pass


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9000)
    args = p.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"serving on http://{args.host}:{server.server_port}  (POST {INVOCATIONS}, POST /predict)", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

"""Serve the function on localhost without Docker, with the routes of the RIE and of API Gateway.

    MODEL_DIR=artifacts/bundle/float32 python -m lambda_fn.local_server   # http://127.0.0.1:9000

POST /2015-03-31/functions/function/invocations   the event as the body, as the Runtime
                                                   Interface Emulator takes it (curl, boto3
                                                   with endpoint_url=...)
POST /predict                                      as API Gateway's HTTP API: a JSON body or
                                                   a raw image, turned into a payload v2 event
GET /                                              the page to try the model in a browser

Port 9000 is the one the README maps the container's RIE to, so every
client command works against either. Local development usually fetches
images from a local server: set ALLOW_PRIVATE_URLS=true for that.
"""

import argparse
import base64
import json
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lambda_fn.app import SETTINGS, lambda_handler  # loads the model now, as Lambda's init does
from lambda_fn.errors import RequestError, error_body
from lambda_fn.events import parse_json
from lambda_fn.logs import log_json_lines

INVOCATIONS = "/2015-03-31/functions/function/invocations"
MAX_BODY = 16 * 1024 * 1024  # more than any limit behind it: API Gateway's is 10 MB, Lambda's 6 MB
CLIENT_TIMEOUT = 30  # seconds a client may take to send its request: a stalled one frees its thread
BACKLOG = 128  # connections waiting to be accepted (the default 5 resets bursts of clients)


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


def body_length(header: str | None) -> int:
    """Content-Length as sent by the client: whole digits, at most MAX_BODY."""
    if header is None:
        return 0
    if not (header.isascii() and header.isdigit()):
        raise RequestError("invalid_request", f"Content-Length {header[:40]!r} is not a whole number of bytes")
    if int(header) > MAX_BODY:
        raise RequestError("payload_too_large", f"the body is over {MAX_BODY} bytes")
    return int(header)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = CLIENT_TIMEOUT

    def do_POST(self):
        self.route("POST")

    def do_GET(self):
        self.route("GET")

    def do_HEAD(self):
        self.route("HEAD")

    def do_PUT(self):
        self.route("PUT")

    def do_DELETE(self):
        self.route("DELETE")

    def do_PATCH(self):
        self.route("PATCH")

    def do_OPTIONS(self):
        self.route("OPTIONS")

    def route(self, method: str):
        try:
            body = self.rfile.read(body_length(self.headers.get("Content-Length")))
        except RequestError as err:
            self.close_connection = True  # the body was not read: the stream is out of step
            return self.reply(err.status, err.body())
        path = self.path.split("?")[0]
        if path == INVOCATIONS and method == "POST":
            try:
                event = parse_json(body or b"{}")
            except RequestError as err:
                return self.reply(err.status, err.body())
            return self.reply(200, lambda_handler(event, LocalContext()))
        response = lambda_handler(http_event(method, path, dict(self.headers), body), LocalContext())
        self.send(response["statusCode"], response["body"].encode(), response["headers"])

    def send_error(self, code, message=None, explain=None):
        """http.server's own errors (a malformed request line, an unknown method): JSON too, not HTML."""
        self.close_connection = True
        self.reply(
            code,
            error_body(
                code,
                "invalid_request" if code < 500 else "internal_error",
                message or self.responses.get(code, ("",))[0],
            ),
        )

    def reply(self, status: int, body: dict):
        self.send(status, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def send(self, status: int, data: bytes, headers: dict):
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format, *args):  # the handler logs each request as JSON already
        pass


class Server(ThreadingHTTPServer):
    request_queue_size = BACKLOG
    daemon_threads = True


def main(argv=None):
    log_json_lines(SETTINGS.log_level)  # the records the function logs in AWS, in the same JSON
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9000)
    args = p.parse_args(argv)
    server = Server((args.host, args.port), Handler)
    print(
        f"serving on http://{args.host}:{server.server_port}  (GET /: the page; POST /predict; POST {INVOCATIONS})",
        flush=True,
    )
    server.serve_forever()


if __name__ == "__main__":
    main()

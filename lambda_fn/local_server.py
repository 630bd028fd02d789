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

It is a development server, but developers run it while they browse, so a
web page must not be able to drive it: it answers only requests whose Host
is a loopback name (or the address it was told to listen on: no DNS
rebinding), and refuses POSTs that a browser marks as cross-site (Origin,
Sec-Fetch-Site). The request itself is read strictly: no Transfer-Encoding,
one well-formed Content-Length, the whole body, within one deadline; the
connections and the bytes it holds at once are capped.
"""

import argparse
import base64
import http.client
import json
import logging
import sys
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lambda_fn.errors import RequestError, echo, error_body
from lambda_fn.events import SECURITY_HEADERS, parse_json
from lambda_fn.fetch import Watchdog
from lambda_fn.logs import log_json_lines

INVOCATIONS = "/2015-03-31/functions/function/invocations"
MAX_BODY = 16 * 1024 * 1024  # more than any limit behind it: API Gateway's is 10 MB, Lambda's 6 MB
REQUEST_DEADLINE = 30  # seconds a client has to send one whole request (and to start the next on keep-alive)
MAX_CONNECTIONS = 64  # open at once; more are answered 503 and closed
MAX_HELD_BYTES = 64 * 1024 * 1024  # request bytes (header fields and bodies) held at once, over all connections
MAX_HEADER_BYTES = 64 * 1024  # a request's line and header fields (nginx: 32 KB; http.server alone: 6.5 MB)
BACKLOG = 128  # connections waiting to be accepted (the default 5 resets bursts of clients)
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "[::1]"}
SAME_SITE = {"same-origin", "none"}  # Sec-Fetch-Site of the page's own requests, and of a typed URL or curl
log = logging.getLogger("fashion.local_server")


@dataclass
class LocalContext:
    """The attribute of Lambda's context object that the handler reads."""

    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))


class HeaderBytes(http.client.HTTPException):
    """Raised while the header is read, once it passes MAX_HEADER_BYTES: http.server answers 431."""


class CountedHeader:
    """The request's stream while its line and header fields are read, counting them (http.server reads them
    line by line, each up to 64 KB, up to 100 lines: 6.5 MB a connection, without this)."""

    def __init__(self, stream):
        self.stream, self.count = stream, 0

    def readline(self, limit=-1):
        line = self.stream.readline(limit)
        self.count += len(line)
        if self.count > MAX_HEADER_BYTES:
            raise HeaderBytes(f"the request's header is over {MAX_HEADER_BYTES} bytes")
        return line

    def __getattr__(self, name):  # read (the body), close ... as the stream's own
        return getattr(self.stream, name)


class HeldBytes:
    """The request bodies held at once: a body that would pass the cap is refused, not read."""

    def __init__(self, cap: int):
        self.cap, self.held, self.lock = cap, 0, threading.Lock()

    def take(self, n: int) -> bool:
        with self.lock:
            if self.held + n > self.cap:
                return False
            self.held += n
            return True

    def give_back(self, n: int) -> None:
        with self.lock:
            self.held -= n


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


def body_length(headers) -> int:
    """The body's length from its framing: one Content-Length of whole digits, at most MAX_BODY, and no
    Transfer-Encoding (two framings, or two lengths, are how one request is smuggled inside another)."""
    if headers.get_all("Transfer-Encoding"):
        raise RequestError("invalid_request", "Transfer-Encoding is not accepted; send the body with a Content-Length")
    lengths = headers.get_all("Content-Length") or []
    if len(lengths) > 1:
        raise RequestError("invalid_request", f"{len(lengths)} Content-Length headers; send one")
    if not lengths:
        return 0
    if not (lengths[0].isascii() and lengths[0].isdigit()):
        raise RequestError("invalid_request", f"Content-Length {echo(lengths[0])} is not a whole number of bytes")
    if int(lengths[0]) > MAX_BODY:
        raise RequestError("payload_too_large", f"the body is over {MAX_BODY} bytes")
    return int(lengths[0])


def host_name(host: str) -> str:
    """The name in a Host header, without its port ([::1]:9000 -> [::1])."""
    return host.split("]")[0] + "]" if host.startswith("[") else host.split(":")[0]


def check_origin(headers, own_names: set[str], method: str) -> None:
    """Only this machine's own clients: a loopback Host, and no browser's cross-site POST."""
    host = headers.get("Host", "")
    if host_name(host).lower() not in own_names:
        raise RequestError(
            "cross_site_refused",
            f"Host {echo(host)} is not this server's; it answers {', '.join(sorted(own_names))} only",
        )
    if method in ("GET", "HEAD"):
        return
    site, origin = headers.get("Sec-Fetch-Site"), headers.get("Origin")
    if site is not None and site not in SAME_SITE:
        raise RequestError("cross_site_refused", f"a {echo(site)} request (Sec-Fetch-Site); only the page's own")
    if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
        raise RequestError("cross_site_refused", f"a request from Origin {echo(origin)}; only the page's own")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_DEADLINE
    server: "Server"

    def handle_one_request(self):
        """One request, read within REQUEST_DEADLINE however slowly the client drips it, its header counted."""
        stream, self.rfile = self.rfile, CountedHeader(self.rfile)  # type: ignore[assignment]
        try:
            with Watchdog(REQUEST_DEADLINE) as self.watchdog:
                self.watchdog.sock = self.connection
                super().handle_one_request()
        finally:
            self.rfile = stream

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
            check_origin(self.headers, self.server.own_names, method)
            length = body_length(self.headers)
        except RequestError as err:
            self.close_connection = True  # the body was not read: the stream is out of step
            return self.reply(err.status, err.body())
        held = length + self.rfile.count  # type: ignore[attr-defined]  # (CountedHeader) the header too, held while the request is, under the same cap
        if not self.server.held.take(held):
            self.close_connection = True
            busy = RequestError("server_busy", f"over {MAX_HELD_BYTES} request bytes held at once; retry")
            return self.reply(busy.status, busy.body())
        try:
            self.answer(method, length)
        finally:
            self.server.held.give_back(held)

    def answer(self, method: str, length: int):
        body = self.rfile.read(length)
        self.watchdog.timer.cancel()  # the request is in: the deadline was for sending it
        if len(body) < length:
            self.close_connection = True
            error = RequestError("invalid_request", f"the body ended after {len(body)} of its {length} bytes")
            return self.reply(error.status, error.body())
        self.respond(method, self.path.split("?")[0], body)

    def respond(self, method: str, path: str, body: bytes):
        """The answer to a whole, well-framed request from this machine (the review page answers its own)."""
        from lambda_fn.app import lambda_handler  # main() loaded it before listening, as Lambda's init does

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
                explain if code == 431 and explain else message or self.responses.get(code, ("",))[0],
            ),
        )

    def reply(self, status: int, body: dict):
        self.send(status, json.dumps(body).encode(), {"Content-Type": "application/json", **SECURITY_HEADERS})

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

    def __init__(self, address, handler):
        super().__init__(address, handler)
        self.own_names = LOOPBACK_NAMES | {address[0].lower(), f"[{address[0].lower()}]"}
        self.held = HeldBytes(MAX_HELD_BYTES)
        self.connections = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request, client_address):
        if not self.connections.acquire(blocking=False):
            body = json.dumps(RequestError("server_busy", f"over {MAX_CONNECTIONS} connections open; retry").body())
            try:
                request.sendall(
                    f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
                )
            except OSError:
                pass
            return self.shutdown_request(request)
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release()

    def handle_error(self, request, client_address):
        """A client that resets or vanishes is one JSON line; anything else a JSON line with its stack trace."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            log.info("client connection ended", extra={"client": client_address[0], "error": type(error).__name__})
        else:
            log.exception("local server failure", extra={"client": client_address[0]})


def main(argv=None):
    from lambda_fn.app import SETTINGS  # loads the model now, as Lambda's init does (not on import: the review
    # page, catalog/review.py, serves through this module without a model)

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

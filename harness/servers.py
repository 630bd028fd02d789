"""Servers on 127.0.0.1 for the tests and the benchmarks: photos, misbehaving servers, the local server.

Every server here listens on a loopback address; the fetcher under test is given `ip_literals_only` as its
resolver, so no name is ever looked up outside this machine.
"""

import contextlib
import functools
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from harness import REPO


class Quiet(BaseHTTPRequestHandler):
    """A handler that keeps the test's output clean: no line per request on stderr."""

    def log_message(self, format, *args):
        pass


def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type="application/json", headers=None):
    """One whole response with its length: what every handler here sends unless it misbehaves on purpose."""
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


@contextlib.contextmanager
def serving(handler, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """A threaded server on 127.0.0.1 (a free port) for as long as the block runs; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


class QuietFiles(Quiet, SimpleHTTPRequestHandler):
    """The files under a directory, as they are, without a line per request."""


def file_server(root: Path):
    """The files under root, served as they are."""
    return serving(functools.partial(QuietFiles, directory=str(root)))


def image_server(root: Path, tls: ssl.SSLContext | None = None):
    """ImageServer over the files under root."""
    return serving(type("Handler", (ImageServer,), {"root": root}), tls)


class ImageServer(Quiet):
    """Serves image_files under /images/, and the misbehaving servers the fetcher must survive."""

    root: Path
    hits: Counter[str] = Counter()  # requests per path, for tests that count fetches

    def do_GET(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        self.hits[url.path] += 1
        if url.path.startswith("/images/"):
            path = self.root / unquote(url.path.removeprefix("/images/"))
            if not path.is_file():
                return self.respond(404, b"not found")
            return self.respond(200, path.read_bytes(), "image/jpeg" if path.suffix == ".jpg" else "image/png")
        if url.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", query["to"][0])
            self.send_header("Content-Length", "0")
            return self.end_headers()
        if url.path == "/stall":  # accepts, then says nothing
            time.sleep(float(query.get("seconds", ["3"])[0]))
            return self.respond(200, b"late", "image/jpeg")
        if url.path == "/drip":  # one byte every 0.1 s: each read is quick, the whole is not
            return self.stream(b"x", pause=0.1, count=100)
        if url.path == "/endless":  # no Content-Length: only counting while streaming stops it
            return self.stream(bytes(64 * 1024), pause=0, count=1024)
        if url.path == "/lying-length":
            self.send_response(200)
            self.send_header("Content-Length", str(1 << 40))
            return self.end_headers()
        if url.path.startswith("/status/"):
            return self.respond(int(url.path.rsplit("/", 1)[1]), b"server error")
        if url.path == "/drip-status":  # the status line itself, a byte every 0.1 s
            return self.raw([b"HTTP/1.1 200 OK\r\n"[k : k + 1] for k in range(17)] * 20, pause=0.1)
        if url.path == "/continue-flood":  # 100 Continue, again and again, never an answer
            return self.raw([b"HTTP/1.1 100 Continue\r\n\r\n"] * 1000, pause=0.01)
        if url.path == "/endless-trailers":  # a small chunked body, then trailer lines without end
            head = (
                b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n"
            )
            return self.raw(
                [head] + [b"X-Trailer: " + b"t" * 1000 + b"\r\n"] * 100_000,
                pause=float(query.get("pause", ["0.001"])[0]),
            )
        if url.path == "/bad-location":
            return self.raw([b"HTTP/1.1 302 Found\r\nLocation: http://[::1/\r\nContent-Length: 0\r\n\r\n"])
        if url.path == "/superscript-length":  # Content-Length: ² (a digit to str.isdigit, not to int)
            body = (self.root / "hat.jpg").read_bytes()
            return self.raw(
                [
                    b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nConnection: close\r\n"
                    b"Content-Length: \xc2\xb2\r\n\r\n" + body
                ]
            )
        if url.path == "/short-body":  # declares 100,000 bytes, sends 10, closes
            return self.raw(
                [b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n" + b"x" * 10]
            )
        if url.path == "/utf8-location":  # a raw UTF-8 Location, as some servers send
            location = "/images/camisa-niño.jpg".encode()
            return self.raw([b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n"])
        if url.path.startswith("/interim/"):  # 102 Processing or 103 Early Hints (with a Link), then the photo
            code = url.path.rsplit("/", 1)[1]
            body = (self.root / "hat.jpg").read_bytes()
            interim = f"HTTP/1.1 {code} Interim\r\nLink: </style.css>; rel=preload\r\n\r\n".encode()
            final = f"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {len(body)}\r\n\r\n"
            return self.raw([interim * 3 + final.encode() + body])
        if url.path == "/long-reason":  # a 64 KB status line
            return self.raw([b"HTTP/1.1 500 " + b"r" * 60_000 + b"\r\nContent-Length: 0\r\n\r\n"])
        self.respond(404, b"not found")

    def raw(self, pieces: list[bytes], pause: float = 0.0):
        """Bytes straight onto the socket, bypassing http.server's own formatting."""
        self.close_connection = True
        try:
            for piece in pieces:
                self.wfile.write(piece)
                self.wfile.flush()
                time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should

    def respond(self, status: int, body: bytes, content_type: str = "text/plain"):
        reply(self, status, body, content_type)

    def stream(self, chunk: bytes, pause: float, count: int):
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            for _ in range(count):
                self.wfile.write(chunk)
                self.wfile.flush()
                time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should


REAL_GETADDRINFO = socket.getaddrinfo


def ip_literals_only(host, port, *args, **kwargs):
    """The tests' resolver: IP literals resolve, names do not (no DNS query leaves the machine)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise socket.gaierror(socket.EAI_NONAME, "names are not resolved in this test") from None
    return REAL_GETADDRINFO(host, port, *args, **kwargs)


@dataclass
class LocalServer:
    url: str
    pid: int
    lines: list[str]  # what it printed (stdout and stderr), read by a thread so the pipe never fills


@contextlib.contextmanager
def local_server(
    model_dir: Path, python: Path | str = sys.executable, settings: dict[str, str] | None = None
) -> Iterator[LocalServer]:
    """lambda_fn.local_server on a free port in its own process, private URLs allowed (the photos are local),
    with any other settings (environment variables) given."""
    env = {**os.environ, "MODEL_DIR": str(model_dir), "ALLOW_PRIVATE_URLS": "true", "PYTHONPATH": str(REPO)}
    env.update(settings or {})
    command = [str(python), "-m", "lambda_fn.local_server", "--port", "0"]
    with started(command, "serving on ", env) as (server, lines):
        yield LocalServer(lines[-1].split()[2], server.pid, lines)


@contextlib.contextmanager
def started(
    command: list[str], ready: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen, list[str]]]:
    """A server's command in its own process, run from the repository, from the line it prints that starts with
    `ready` until the block ends (then killed); what it printed (stdout and stderr) is read by a thread, so the
    pipe never fills."""
    server = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert server.stdout is not None  # stdout=PIPE
    try:
        lines: list[str] = []
        while not (lines and lines[-1].startswith(ready)):  # after the interpreter's own start-up lines
            lines.append(server.stdout.readline())
            if not lines[-1] or len(lines) > 20:
                raise RuntimeError(f"{' '.join(command)} did not start:\n" + "".join(lines))
        threading.Thread(target=lines.extend, args=(server.stdout,), daemon=True).start()
        yield server, lines
    finally:
        server.kill()
        server.wait()


def post(url: str, data: bytes, content_type: str) -> tuple[int, dict]:
    """(status, JSON body) of a POST, error statuses included."""
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def wait_for(path_or_port: Path | int, seconds: float = 60) -> None:
    """Until a unix socket exists, or something listens on this port of 127.0.0.1."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if isinstance(path_or_port, Path):
            if path_or_port.exists():
                return
        else:
            try:
                socket.create_connection(("127.0.0.1", path_or_port), timeout=1).close()
                return
            except OSError:
                pass
        time.sleep(0.2)
    raise TimeoutError(f"{path_or_port} did not come up within {seconds} s")

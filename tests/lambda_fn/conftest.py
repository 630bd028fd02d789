"""The serving tests' real parts: image files of every kind, an HTTP server on 127.0.0.1, the app.

Nothing here imports TensorFlow: these tests also run in the Lambda's
TensorFlow-free environment.
"""

import io
import ipaddress
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO, write_image

# the users' sample events (they run as they are) and the tests' templates (the image server's URL filled in)
EVENT_FOLDERS = (REPO / "infra" / "events", REPO / "tests" / "events")


def png_bomb(width: int, height: int, rgba=False) -> bytes:
    """A valid PNG (1-bit grey, or 8-bit RGBA) that is small on the wire and width x height pixels decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(width * 4 if rgba else (width + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8 if rgba else 1, 6 if rgba else 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def noise(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    bands = len(mode)
    pixels = np.random.default_rng(1).integers(0, 256, (size[1], size[0], bands), dtype=np.uint8)
    return Image.fromarray(pixels if bands > 1 else pixels[..., 0], mode)


def jpeg_with_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The same JPEG with its frame header (SOF) claiming another size: what a decoder allocates for."""
    at = next(k for k in range(2, len(jpeg)) if jpeg[k] == 0xFF and jpeg[k + 1] in (0xC0, 0xC1, 0xC2))
    return jpeg[: at + 5] + struct.pack(">HH", height, width) + jpeg[at + 9 :]


def progressive_bomb(width: int, height: int, mode: str = "CMYK") -> bytes:
    """A progressive JPEG whose header says width x height: libjpeg holds its whole coefficient buffer."""
    return jpeg_with_size(encode(noise((64, 64), mode), "JPEG", progressive=True), width, height)


def scan_flood(scans: int) -> bytes:
    """A progressive JPEG whose last scan is repeated until it has this many scans: each is a pass."""
    jpeg = encode(noise((16, 16)), "JPEG", progressive=True)
    last_scan = jpeg.rindex(b"\xff\xda")
    extra = scans - jpeg.count(b"\xff\xda")
    return jpeg[:last_scan] + jpeg[last_scan:-2] * (extra + 1) + b"\xff\xd9"


def marker_flood(markers: int) -> bytes:
    """A small JPEG behind this many empty APP15 segments, each parsed in Python by Pillow."""
    jpeg = encode(noise((64, 64)), "JPEG")
    return jpeg[:2] + b"\xff\xef\x00\x02" * markers + jpeg[2:]


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def chunk_flood(chunks: int) -> bytes:
    """A small PNG with this many private ancillary chunks before its image data."""
    png = encode(noise((64, 64)), "PNG")
    return png[:33] + png_chunk(b"prVt", b"") * chunks + png[33:]


def rle8_bmp(width: int, height: int) -> bytes:
    """An RLE8-compressed BMP (Pillow decodes these in Python): runs of 255 pixels, row after row."""
    row = b"\xff\x01" * (width // 255) + bytes([width % 255, 2]) * (width % 255 > 0) + b"\x00\x00"
    data = row * height + b"\x00\x01"
    palette = b"".join(bytes([k, k, k, 0]) for k in range(256))
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(data), 2835, 2835, 256, 0)
    offset = 14 + len(info) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(data), 0, 0, offset) + info + palette + data


def corrupt_exif_jpeg() -> bytes:
    """A JPEG whose EXIF names an orientation tag with more values than the segment holds: Pillow warns."""
    tiff = b"II*\x00\x08\x00\x00\x00" + struct.pack("<HHHII", 1, 0x0112, 3, 1000, 0x7FFF) + b"\x00\x00\x00\x00"
    exif = b"Exif\x00\x00" + tiff
    jpeg = encode(noise((64, 64)), "JPEG")
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + jpeg[2:]


@pytest.fixture(scope="session")
def image_files(tmp_path_factory) -> dict[str, Path]:
    """Real image files: JPEGs, every Pillow mode the handler must accept, and bad ones."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    write_image(root / "pants.jpg", (40, 60, 160), rng, size=(120, 160))
    write_image(root / "hat.jpg", (200, 40, 40), rng, size=(200, 150))
    colour = Image.open(root / "hat.jpg")
    gradient = np.linspace(0, 65535, 64 * 48, dtype=np.uint16).reshape(48, 64)
    files = {
        "gray.png": encode(colour.convert("L"), "PNG"),
        "gray-alpha.png": encode(colour.convert("LA"), "PNG"),
        "rgba.png": encode(colour.convert("RGBA"), "PNG"),
        "palette.png": encode(colour.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
        "cmyk.jpg": encode(colour.convert("CMYK"), "JPEG"),
        "gray16.png": encode(Image.fromarray(gradient), "PNG"),
        "photo.webp": encode(colour, "WEBP"),
        "camisa-niño.jpg": (root / "hat.jpg").read_bytes(),  # a non-ASCII name, as shops have
        "text.jpg": b"this is a text file, not a photo\n" * 10,
        "truncated.jpg": (root / "hat.jpg").read_bytes()[:-2000],  # header intact, scan data cut
        "bomb.png": png_bomb(20_000, 20_000),  # 400 Mpx: over Pillow's own hard limit
        "big.png": png_bomb(8_000, 6_000),  # 48 Mpx of 1-bit grey: 192 MB once RGB
        "rgba-6300.png": png_bomb(6_300, 6_300, rgba=True),  # what the review sent: 159 MB decoded
        "thin.png": png_bomb(1, 30_000),  # 1:30000
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    return {p.name: p for p in root.iterdir()}


class ImageServer(BaseHTTPRequestHandler):
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
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

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

    def log_message(self, format, *args):
        pass


def ip_literals_only(host, port, *args, **kwargs):
    """The tests' resolver: IP literals resolve, names do not (no DNS query leaves the machine)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise socket.gaierror(socket.EAI_NONAME, "names are not resolved in this test") from None
    return REAL_GETADDRINFO(host, port, *args, **kwargs)


REAL_GETADDRINFO = socket.getaddrinfo


@pytest.fixture
def names_do_not_resolve(monkeypatch):
    """The fetcher's resolver, as the test controls it: no name is looked up outside this machine."""
    monkeypatch.setattr(socket, "getaddrinfo", ip_literals_only)


@pytest.fixture(scope="session")
def image_server(image_files) -> Iterator[str]:
    """Base URL of a real HTTP server on 127.0.0.1."""
    handler = type("Handler", (ImageServer,), {"root": next(iter(image_files.values())).parent})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def image_server_hits(image_server) -> Counter:
    """The image server's requests per path, from zero for this test."""
    ImageServer.hits.clear()
    return ImageServer.hits


@pytest.fixture
def load_event(image_server):
    def load(name: str) -> dict:
        (path,) = [folder / name for folder in EVENT_FOLDERS if (folder / name).is_file()]
        return json.loads(path.read_text().replace("{image_server}", image_server))

    return load


@pytest.fixture(scope="session")
def local_server_process(tiny_bundle):
    """(base URL, the lines it prints so far): a thread keeps reading them, so the pipe never fills."""
    env = {**os.environ, "MODEL_DIR": str(tiny_bundle), "ALLOW_PRIVATE_URLS": "true", "PYTHONPATH": str(REPO)}
    server = subprocess.Popen(
        [sys.executable, "-m", "lambda_fn.local_server", "--port", "0"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert server.stdout is not None  # stdout=PIPE
    lines: list[str] = []
    while not (lines and lines[-1].startswith("serving on ")):  # after the interpreter's own start-up lines
        lines.append(server.stdout.readline())
        assert lines[-1] and len(lines) < 20, "".join(lines)
    threading.Thread(target=lines.extend, args=(server.stdout,), daemon=True).start()
    yield lines[-1].split()[2], lines
    server.kill()
    server.wait()


@pytest.fixture
def local_server(local_server_process) -> str:
    return local_server_process[0]


def post(url, data: bytes, content_type: str):
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())

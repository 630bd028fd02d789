"""The serving tests' real parts: image files of every kind, an HTTP server on 127.0.0.1, the app.

Nothing here imports TensorFlow: these tests also run in the Lambda's
TensorFlow-free environment.
"""

import json
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness import REPO, servers
from harness.dataset import write_image
from harness.inputs import encode, png_bomb

# the users' sample events (they run as they are) and the tests' templates (the image server's URL filled in)
EVENT_FOLDERS = (REPO / "infra" / "events", REPO / "tests" / "events")


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


@pytest.fixture
def names_do_not_resolve(monkeypatch):
    """The fetcher's resolver, as the test controls it: no name is looked up outside this machine."""
    monkeypatch.setattr(socket, "getaddrinfo", servers.ip_literals_only)


@pytest.fixture(scope="session")
def image_server(image_files) -> Iterator[str]:
    """Base URL of a real HTTP server on 127.0.0.1."""
    with servers.image_server(next(iter(image_files.values())).parent) as url:
        yield url


@pytest.fixture
def image_server_hits(image_server) -> Counter:
    """The image server's requests per path, from zero for this test."""
    servers.ImageServer.hits.clear()
    return servers.ImageServer.hits


@pytest.fixture
def load_event(image_server):
    def load(name: str) -> dict:
        (path,) = [folder / name for folder in EVENT_FOLDERS if (folder / name).is_file()]
        return json.loads(path.read_text().replace("{image_server}", image_server))

    return load


@pytest.fixture(scope="session")
def local_server_process(tiny_bundle):
    """The local server on the tiny bundle, and what it prints."""
    with servers.local_server(tiny_bundle) as server:
        yield server


@pytest.fixture
def local_server(local_server_process) -> str:
    return local_server_process.url

"""Shared fixtures: a tiny generated dataset, the real data beside the project, a tiny bundle; real image files of
every kind, an HTTP server on 127.0.0.1 serving them, the local server on the tiny bundle.

Fixtures that need TensorFlow import it lazily, so that the serving tests
also run in the Lambda's TensorFlow-free environment.
"""

import shutil
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness import servers
from harness.browser import chromium
from harness.dataset import make_tiny_dataset, tiny_training_flags, write_image
from harness.inputs import encode, png_bomb
from harness.needs import need_shared
from project.paths import ARTIFACTS
from train.data import SHARED_DATA

# Built once by the TensorFlow environment's run of the suite, reused by the
# TensorFlow-free one (make test runs them in that order).
TINY_BUNDLES = ARTIFACTS / "test" / "tiny-bundles"  # float32/ and int8-dynamic/


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    """A fresh 3-class dataset (6/3/3 images per class), safe to damage."""
    return make_tiny_dataset(tmp_path / "data")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return need_shared(SHARED_DATA)


@pytest.fixture(scope="session")
def shared_weights() -> Path:
    from train.backbone import XCEPTION_WEIGHTS  # Keras: imported only where training is tested

    return need_shared(XCEPTION_WEIGHTS)


@pytest.fixture(scope="session")
def real_images(shared_data) -> list[Path]:
    """One real validation image per class."""
    return [
        sorted((shared_data / "validation" / c.name).glob("*.jpg"))[0]
        for c in sorted((shared_data / "validation").iterdir())
    ]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A finished training run on the tiny dataset (random base weights, 71x71, the head alone)."""
    from train.config import parse_args
    from train.train import train

    root = tmp_path_factory.mktemp("tiny-run")
    flags = ["--preset", "frozen", "--head-epochs", "3", "--views", "1", "--batch-size", "8"]
    train(parse_args(tiny_training_flags(root, *flags, per_split=(6, 3, 3))))
    return root / "run"


@pytest.fixture(scope="session")
def tiny_bundles(request, tmp_path_factory) -> Path:
    """The tiny model's float32 and int8-dynamic serving bundles; built with TensorFlow where it is installed."""
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        if not (TINY_BUNDLES / "float32" / "model.json").is_file():
            pytest.fail(f"{TINY_BUNDLES} is missing: run the TensorFlow environment's tests first (make test)")
        return TINY_BUNDLES
    from convert.convert import convert

    run = request.getfixturevalue("tiny_run")
    out = tmp_path_factory.mktemp("bundles")
    convert(run, out, variants=["float32", "int8-dynamic"])
    shutil.rmtree(TINY_BUNDLES, ignore_errors=True)
    shutil.copytree(out, TINY_BUNDLES)
    return TINY_BUNDLES


@pytest.fixture(scope="session")
def tiny_bundle(tiny_bundles) -> Path:
    """The tiny model's float32 bundle: what most serving tests load."""
    return tiny_bundles / "float32"


@pytest.fixture(scope="session")
def app(tiny_bundle):
    """lambda_fn.app, loaded at import as in Lambda, on the tiny bundle.

    Private addresses are allowed so that the images can come from the
    server on 127.0.0.1; the tests of the refusals turn the opt-in off.
    """
    with pytest.MonkeyPatch.context() as env:  # read once, at import, as in Lambda; then put back
        env.setenv("MODEL_DIR", str(tiny_bundle))
        env.setenv("ALLOW_PRIVATE_URLS", "true")
        import lambda_fn.app as app
    return app


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


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium, one per test module (the pages' tests)."""
    driver = chromium(tmp_path_factory.mktemp("chromium"))
    yield driver
    driver.quit()


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


@pytest.fixture(scope="session")
def local_server_process(tiny_bundle):
    """The local server on the tiny bundle, and what it prints."""
    with servers.local_server(tiny_bundle) as server:
        yield server


@pytest.fixture
def local_server(local_server_process) -> str:
    return local_server_process.url

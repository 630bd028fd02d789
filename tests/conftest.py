"""Shared fixtures: a tiny generated dataset, the real data beside the project, a tiny bundle.

Fixtures that need TensorFlow import it lazily, so that the serving tests
also run in the Lambda's TensorFlow-free environment.
"""

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

from harness import REPO
from harness.dataset import make_tiny_dataset
from train.data import SHARED_DATA

# Built once by the TensorFlow environment's run of the suite, reused by the
# TensorFlow-free one (make test runs them in that order).
TINY_BUNDLES = REPO / "artifacts" / "test" / "tiny-bundles"  # float32/ and int8-dynamic/


def missing(message: str) -> NoReturn:
    """Something a test needs is not here: skip for an outside user, but fail in CI (make test installs it)."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def need_shared(path: Path) -> Path:
    """The real data or weights."""
    if not path.exists():
        missing(f"{path} is missing (the dataset and weights beside the project; see ../shared/README.md)")
    return path


def need_program(name: str, package: str) -> str:
    """A program from the system's packages (make test installs them: tests/system-packages.sh)."""
    found = shutil.which(name)
    if found is None:
        missing(f"{name} is not installed: apt-get install {package} (or run make test as root)")
    return str(found)


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    """A fresh 3-class dataset (6/3/3 images per class), safe to damage."""
    return make_tiny_dataset(tmp_path / "data")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return need_shared(SHARED_DATA)


@pytest.fixture(scope="session")
def shared_weights() -> Path:
    from train.backbone import BACKBONES, DEFAULT_BACKBONE  # Keras: imported only where training is tested

    return need_shared(BACKBONES[DEFAULT_BACKBONE].shared_weights)


@pytest.fixture(scope="session")
def real_images(shared_data) -> list[Path]:
    """One real validation image per class."""
    return [
        sorted((shared_data / "validation" / c.name).glob("*.jpg"))[0]
        for c in sorted((shared_data / "validation").iterdir())
    ]


def tiny_training_flags(root: Path, *flags: str, per_split=(3, 2, 2)) -> list[str]:
    """Training flags for a small run on a fresh tiny dataset under root: random base weights, 71x71, one epoch
    of each phase, the run in root/run and its cache in root/cache. Later flags win (argparse keeps the last)."""
    data = make_tiny_dataset(root / "data", per_split=per_split)
    settings = {"data": data, "weights": "none", "size": 71, "batch-size": 4, "head-epochs": 1}
    settings |= {"fine-tune-epochs": 1, "views": 2, "out": root / "run", "cache": root / "cache"}
    return [*(part for name, value in settings.items() for part in (f"--{name}", str(value))), *flags]


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

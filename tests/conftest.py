"""Shared fixtures: a tiny generated dataset, the real data beside the project, a tiny bundle.

Fixtures that need TensorFlow import it lazily, so that the serving tests
also run in the Lambda's TensorFlow-free environment.
"""

import shutil
from pathlib import Path

import pytest

from harness.dataset import make_tiny_dataset, tiny_training_flags
from harness.needs import need_shared
from lambda_fn.settings import ARTIFACTS
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

"""What can be checked of Dockerfile.lambda without a Docker engine."""

import subprocess
import zipfile

import pytest

from convert.convert import OUT as BUNDLE_OUT
from harness import REPO
from harness.dockerfile import base_image, ignored, instructions, pip_download_lambda_wheels


def test_base_image_is_the_pinned_lambda_python_image():
    image, tag = base_image()
    assert image == "public.ecr.aws/lambda/python"
    assert tuple(map(int, tag.split(".")[:2])) >= (3, 12), "LiteRT's wheels need glibc 2.27+: Python 3.12 images"


def test_every_copy_source_is_in_the_build_context_after_the_main_job(tiny_bundle):
    """The bundle the image copies is the folder the conversion stage writes, holding what Model loads."""
    sources = [rest.split()[0].rstrip("/") for op, rest in instructions() if op == "COPY"]
    bundle = BUNDLE_OUT.relative_to(REPO).as_posix() + "/float32"  # make run's conversion output, default variant
    assert bundle in sources
    for source in sources:
        if source == bundle:
            # built in a temporary folder by the same convert() that make run calls, then kept
            # under artifacts/test: the files are the ones a real bundle folder holds
            required = [f"{source}/{name}" for name in ("model.tflite", "model.json", "checks/00.jpg")]
            assert {p.name for p in tiny_bundle.iterdir()} == {
                "model.tflite",
                "model.json",
                "checks",
            }  # the hook's photos
        else:
            assert (REPO / source).exists(), source
            required = [source]
        for path in required:
            assert not ignored(path), f"{path} is excluded from the build context by .dockerignore"
    assert ignored(".venv/bin/python") and ignored("artifacts/cache/x.npz") and ignored("lambda_fn/local_server.py")
    assert ignored("catalog/client.py") and ignored("project/paths.py")
    assert not ignored("lambda_fn/app.py")


def test_handler_module_is_copied_where_cmd_looks():
    copies = {rest.split()[0].rstrip("/"): rest.split()[1] for op, rest in instructions() if op == "COPY"}
    assert copies["lambda_fn"] == "${LAMBDA_TASK_ROOT}/lambda_fn/"
    (cmd,) = [rest for op, rest in instructions() if op == "CMD"]
    assert '"lambda_fn.app.lambda_handler"' in cmd


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_requirements_resolve_as_binary_wheels_for_lambda(arch, tmp_path):
    """The exact pins download as wheels for the image's Python and glibc, on both architectures."""
    result = subprocess.run(pip_download_lambda_wheels(arch, tmp_path), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    wheels = list(tmp_path.glob("*.whl"))
    names = {w.name.split("-")[0].lower() for w in wheels}
    assert {"ai_edge_litert", "numpy", "pillow"} <= names
    assert not any(n.startswith(("tensorflow", "keras")) for n in names)
    for wheel in wheels:
        assert arch in wheel.name or wheel.name.endswith("-none-any.whl"), wheel.name
        assert zipfile.is_zipfile(wheel)

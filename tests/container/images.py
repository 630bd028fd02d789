"""Test aid: the engine, the base image and `make image` on a context of the repo's own files.

Used by tests/lambda_fn/test_container.py and bench/container.py.
"""

import shutil
import subprocess
from pathlib import Path

from tests.conftest import REPO

AWS_BASE = "public.ecr.aws/lambda/python:3.12"  # Dockerfile.lambda's FROM
STANDIN = Path(__file__).parent / "build-standin.sh"


def find_engine() -> str:
    """docker or podman, as `make image` picks it (infra/container-engine); RuntimeError says why neither."""
    found = subprocess.run([str(REPO / "infra" / "container-engine")], capture_output=True, text=True)
    if found.returncode:
        raise RuntimeError(found.stderr.strip())
    return found.stdout.strip()


def ensure_base(engine: str) -> str:
    """AWS's base image where it can be had; else the stand-in, built here from Debian packages. Says which."""
    exists = [engine, "image", "exists", AWS_BASE] if engine == "podman" else [engine, "image", "inspect", AWS_BASE]
    if subprocess.run(exists, capture_output=True).returncode == 0:
        return f"{AWS_BASE} (already here: AWS's, or the stand-in built before)"
    if subprocess.run([engine, "pull", AWS_BASE], capture_output=True, timeout=600).returncode == 0:
        return f"{AWS_BASE} (pulled from AWS)"
    subprocess.run([str(STANDIN), engine], check=True, timeout=900)
    return f"the stand-in for {AWS_BASE} (tests/container/build-standin.sh)"


def build_image(tag: str, bundle: Path, context: Path) -> None:
    """make image on a context holding the repo's Dockerfile.lambda, .dockerignore and lambda_fn/,
    with bundle as artifacts/bundle/float32: what a user's build gets, with the model chosen here."""
    for path in ("Dockerfile.lambda", ".dockerignore"):
        shutil.copy(REPO / path, context / path)
    shutil.copytree(REPO / "lambda_fn", context / "lambda_fn", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(bundle, context / "artifacts" / "bundle" / "float32")
    subprocess.run(["make", "-s", "image", f"IMAGE={tag}", f"IMAGE_CONTEXT={context}"], cwd=REPO, check=True)


def run_container(engine: str, tag: str, runtime_api: str, *env: str) -> str:
    """Start the image as Lambda would, its runtime polling runtime_api; returns the container's id.
    Host networking: the Runtime API and the tests' image server listen on 127.0.0.1."""
    flags = [f for name in (f"AWS_LAMBDA_RUNTIME_API={runtime_api}", *env) for f in ("-e", name)]
    command = [engine, "run", "-d", "--rm", "--network", "host", *flags, tag]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def remove(engine: str, container: str) -> str:
    """Stop and remove the container; returns what it logged."""
    logs = subprocess.run([engine, "logs", container], capture_output=True, text=True).stdout
    subprocess.run([engine, "rm", "-f", container], capture_output=True)
    return logs

"""Test aid: the engine, the base image and `make image` on a context of the repo's own files.

Used by tests/lambda_fn/test_container.py and bench/container.py.
"""

import json
import shutil
import socket
import subprocess
import time
import urllib.request
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


RIE = "/usr/local/bin/aws-lambda-rie"  # where AWS's base image (and the stand-in) keep the emulator
INVOCATIONS = "/2015-03-31/functions/function/invocations"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_under_rie(engine: str, tag: str, handler: str, *env: str) -> tuple[str, str]:
    """The image under AWS's Runtime Interface Emulator, on the host's network so that the function can fetch
    from a server on the host's 127.0.0.1 (in a bridged container 127.0.0.1 is the container itself): the RIE
    as entry point, on a free loopback port, starting the image's own entry point with the handler, as AWS
    documents for images run under a mounted RIE. Returns (container id, the invocations URL)."""
    port, api_port = free_port(), free_port()
    flags = [f for name in env for f in ("-e", name)]
    command = [engine, "run", "-d", "--rm", "--network", "host", "--entrypoint", RIE, *flags, tag]
    command += ["--runtime-interface-emulator-address", f"127.0.0.1:{port}"]
    command += ["--runtime-api-address", f"127.0.0.1:{api_port}", "/lambda-entrypoint.sh", handler]
    container = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    return container, f"http://127.0.0.1:{port}{INVOCATIONS}"


def invoke_rie(url: str, event) -> dict:
    """One invocation through the RIE's HTTP API: the function's answer."""
    request = urllib.request.Request(url, data=json.dumps(event).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=180) as response:
        return json.loads(response.read())


def remove(engine: str, container: str) -> str:
    """Stop and remove the container; returns what it logged."""
    logs = subprocess.run([engine, "logs", container], capture_output=True, text=True).stdout
    subprocess.run([engine, "rm", "-f", container], capture_output=True)
    return logs

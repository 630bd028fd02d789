"""The container engine, the base image (AWS's, or the stand-in that tests/container/ builds) and `make image`
on a context of the repo's own files."""

import json
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

from harness import REPO
from harness.servers import wait_for

AWS_BASE = "public.ecr.aws/lambda/python:3.12"  # Dockerfile.lambda's FROM
STANDIN = REPO / "tests" / "container" / "build-standin.sh"
ARM64_STANDIN = "localhost/lambda-python-standin:arm64"  # passed as BASE_IMAGE: AWS's name stays x86_64's
PLATFORMS = {"x86_64": "linux/amd64", "arm64": "linux/arm64"}  # Lambda's architectures, as engines name them


def find_engine() -> str:
    """docker or podman, as `make image` picks it (infra/container-engine); RuntimeError says why neither."""
    found = subprocess.run([str(REPO / "infra" / "container-engine")], capture_output=True, text=True)
    if found.returncode:
        raise RuntimeError(found.stderr.strip())
    return found.stdout.strip()


def image_exists(engine: str, tag: str) -> bool:
    exists = [engine, "image", "exists", tag] if engine == "podman" else [engine, "image", "inspect", tag]
    return subprocess.run(exists, capture_output=True).returncode == 0


def ensure_base(engine: str, arch: str = "x86_64") -> str:
    """The base image for arch, by name: AWS's where it can be pulled; else the stand-in, built here from Debian's
    packages (x86_64: under AWS's name, so that Dockerfile.lambda builds unchanged; arm64: as ARM64_STANDIN)."""
    standin = AWS_BASE if arch == "x86_64" else ARM64_STANDIN
    if image_exists(engine, standin):
        return standin
    pull = [engine, "pull", "--platform", PLATFORMS[arch], AWS_BASE]
    if subprocess.run(pull, capture_output=True, timeout=600).returncode == 0:
        return AWS_BASE
    subprocess.run([str(STANDIN), engine, standin, arch], check=True, timeout=1800)
    return standin


def make_context(context: Path, bundle: Path) -> Path:
    """A project folder holding the repo's Dockerfile.lambda, .dockerignore, samconfig.toml, lambda_fn/ and
    infra/, with bundle as artifacts/bundle/float32: what a user's checkout has after make run, with the model
    chosen here (the image's build context, and where sam runs)."""
    for path in ("Dockerfile.lambda", ".dockerignore", "samconfig.toml"):
        shutil.copy(REPO / path, context / path)
    for folder in ("lambda_fn", "infra"):
        shutil.copytree(REPO / folder, context / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(bundle, context / "artifacts" / "bundle" / "float32")
    return context


def build_image(tag: str, bundle: Path, context: Path, arch: str = "x86_64", base: str | None = None) -> None:
    """make image on make_context(context, bundle), for arch, on base where it is not AWS's."""
    make_context(context, bundle)
    command = ["make", "-s", "image", f"IMAGE={tag}", f"IMAGE_CONTEXT={context}", f"PLATFORM={PLATFORMS[arch]}"]
    subprocess.run([*command, *([f"BASE_IMAGE={base}"] if base and base != AWS_BASE else [])], cwd=REPO, check=True)


RIE = "/usr/local/bin/aws-lambda-rie"  # where AWS's base image (and the stand-in) keep the emulator
INVOCATIONS = "/2015-03-31/functions/function/invocations"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_under_rie(engine: str, tag: str, handler: str, *env: str, arch: str = "x86_64") -> tuple[str, str]:
    """The image under AWS's Runtime Interface Emulator, on the host's network so that the function can fetch
    from a server on the host's 127.0.0.1 (in a bridged container 127.0.0.1 is the container itself): the RIE
    as entry point, on a free loopback port, starting the image's own entry point with the handler, as AWS
    documents for images run under a mounted RIE. Returns (container id, the invocations URL)."""
    port, api_port = free_port(), free_port()
    flags = [f for name in env for f in ("-e", name)]
    command = [engine, "run", "-d", "--rm", "--platform", PLATFORMS[arch], "--network", "host", "--entrypoint", RIE]
    command += [*flags, tag]
    command += ["--runtime-interface-emulator-address", f"127.0.0.1:{port}"]
    command += ["--runtime-api-address", f"127.0.0.1:{api_port}", "/lambda-entrypoint.sh", handler]
    container = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    wait_for(port, 120)  # under qemu the RIE itself starts slowly
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

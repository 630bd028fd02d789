"""AWS's SAM CLI (from .venv-sam, which make test builds) driving the container engine.

SAM CLI speaks Docker's API. With podman that is `podman system service` on a socket of our own, named by
DOCKER_HOST. Nothing leaves the machine: telemetry off, the weekly version check (a request to PyPI) marked
as done in a config folder of our own, no instance-metadata credential look-up, and no image pulls
(--skip-pull-image; the function's image and its base are built here).
"""

import json
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness import REPO
from harness.servers import wait_for

SAM = REPO / ".venv-sam" / "bin" / "sam"


def rie_on_host() -> Path | None:
    """AWS's Runtime Interface Emulator for this machine (a static program), as the aws-sam-cli wheel installs it."""
    arch = {"x86_64": "x86_64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    found = sorted(REPO.glob(f".venv-sam/lib/python3*/site-packages/samcli/local/rapid/aws-lambda-rie-{arch}"))
    return found[-1] if found else None


REGION = "eu-west-1"  # any: nothing is deployed, but SAM CLI and boto3 want one


@contextmanager
def sam_offline() -> Iterator[dict[str, str]]:
    """SAM CLI's environment with nothing sent off the machine, its config in a folder of our own."""
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "sam-config"
        config.mkdir()
        metadata = {"telemetryEnabled": False, "lastVersionCheck": time.time() + 365 * 86400}
        (config / "metadata.json").write_text(json.dumps(metadata))
        yield {
            **os.environ,
            "SAM_CLI_TELEMETRY": "0",
            "__SAM_CLI_APP_DIR": str(config),
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
        }


@contextmanager
def sam_environment(engine: str) -> Iterator[dict[str, str]]:
    """The environment SAM CLI runs in, for as long as this lasts (podman's Docker API is served that long)."""
    with sam_offline() as env, tempfile.TemporaryDirectory() as tmp:
        service = None
        if engine == "podman":
            sock = Path(tmp) / "podman.sock"
            service = subprocess.Popen(
                ["podman", "system", "service", "--time=0", f"unix://{sock}"], stderr=subprocess.DEVNULL
            )
            wait_for(sock)
            env["DOCKER_HOST"] = f"unix://{sock}"
        try:
            yield env
        finally:
            if service:
                service.terminate()
                service.wait(timeout=30)


def sam(env: dict[str, str], cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """One sam command, in cwd (a project folder: samconfig.toml, infra/), its output captured."""
    return subprocess.run([str(SAM), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def invoked(result: subprocess.CompletedProcess) -> dict:
    """What `sam local invoke` printed as the function's answer: the last line of its stdout."""
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])

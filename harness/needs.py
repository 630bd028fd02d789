"""What a test needs from outside the project: missing outside CI means a skip, in CI a failure (make test
installs everything, so a missing piece there is a broken install step, not an outside user's machine)."""

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest


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

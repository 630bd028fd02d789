"""Dockerfile.lambda read as data: its instructions with ARG defaults substituted, its base image, and the pip
command that fetches its requirements as that image would install them."""

import fnmatch
import json
import re
import sys
from pathlib import Path

from harness import REPO

DOCKERFILE = REPO / "Dockerfile.lambda"
LAMBDA_GLIBC = (2, 34)  # Amazon Linux 2023, under public.ecr.aws/lambda/python:3.12


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    parsed = [tuple(line.split(None, 1)) for line in lines]
    args = {k: v for op, rest in parsed if op == "ARG" and "=" in rest for k, v in [rest.split("=", 1)]}
    return [
        (op.upper(), re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), rest)) for op, rest in parsed
    ]


def handler() -> str:
    """The image's CMD: the handler Lambda (and the RIE) calls."""
    (cmd,) = [json.loads(rest) for op, rest in instructions() if op == "CMD"]
    return cmd[0]


def base_image() -> tuple[str, str]:
    """(image, tag) of the FROM line; the tag of AWS's Python images is their Python version."""
    (base,) = [rest for op, rest in instructions() if op == "FROM"]
    image, tag = base.split(":")
    return image, tag


def pip_download_lambda_wheels(arch: str, dest: Path) -> list[str]:
    """The pip command that downloads lambda_fn/requirements.txt as the image's pip would install it on arch:
    binary wheels only, for its CPython and any manylinux tag its glibc accepts."""
    platforms = [f"manylinux_2_{minor}_{arch}" for minor in range(17, LAMBDA_GLIBC[1] + 1)]
    _, python = base_image()
    command = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--python-version", python]
    command += ["--implementation", "cp", "-d", str(dest), "-r", str(REPO / "lambda_fn" / "requirements.txt")]
    for platform in [*platforms, f"manylinux2014_{arch}"]:
        command += ["--platform", platform]
    return command


def ignored(path: str) -> bool:
    """.dockerignore's verdict for a path of the build context (last matching rule wins)."""
    verdict = False
    for rule in (REPO / ".dockerignore").read_text().splitlines():
        rule = rule.strip()
        if not rule or rule.startswith("#"):
            continue
        negate, pattern = rule.startswith("!"), rule.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
        if any(fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p, pattern.replace("**/", "")) for p in prefixes):
            verdict = not negate
    return verdict

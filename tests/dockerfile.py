"""Dockerfile.lambda read as data: its instructions with ARG defaults substituted."""

import re

from tests.conftest import REPO

DOCKERFILE = REPO / "Dockerfile.lambda"


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    parsed = [tuple(line.split(None, 1)) for line in lines]
    args = {k: v for op, rest in parsed if op == "ARG" and "=" in rest for k, v in [rest.split("=", 1)]}
    return [
        (op.upper(), re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), rest)) for op, rest in parsed
    ]

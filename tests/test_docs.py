"""Every command README.md, BENCHMARKS.md and the pages under docs/ show, run far enough to parse its arguments:
a renamed flag, target, variable or subcommand fails here, not for the reader.

Ours (`python -m`, `make`) and AWS's SAM CLI are checked; the others (docker, podman, curl, aws, pip) are other
vendors' tools, shown as examples of their own documented use.
"""

import os
import re
import shlex
import subprocess
import sys

import pytest

from harness import REPO
from harness.needs import missing
from harness.sam import SAM, sam_offline

# docs/benchmarks-history.md keeps earlier rounds' commands as they were run: it is a record, not instructions
DOCS = (
    "README.md",
    "BENCHMARKS.md",
    *sorted(p.relative_to(REPO).as_posix() for p in (REPO / "docs").glob("*.md") if p.name != "benchmarks-history.md"),
)
CHECKED = re.compile(r"^(?:time\s+)?(?:[A-Z_0-9]+=\S+\s+)*(make|\S*python3?|sam)\s")
# Parses the module's arguments as it would run, then stops: parse_args raises once it has succeeded.
PARSE_ONLY = """
import argparse, runpy, sys
class Parsed(Exception): pass
def parse_then_stop(self, args=None, namespace=None):
    original(self, args, namespace)
    raise Parsed
original, argparse.ArgumentParser.parse_args = argparse.ArgumentParser.parse_args, parse_then_stop
sys.argv = sys.argv[1:]
try:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
except Parsed:
    sys.exit(0)
sys.exit(f"{sys.argv[0]} finished without parsing its arguments with argparse")
"""


def shown(doc: str) -> list[str]:
    """The commands ours or SAM CLI's in a document: fenced blocks' lines (continuations joined, comments cut)
    and inline code spans."""
    text = (REPO / doc).read_text()
    found, in_block, pending = [], False, ""
    for line in text.splitlines():
        if line.startswith("```"):
            in_block = not in_block
        elif in_block:
            code = line.split(" #")[0].rstrip()
            if code.endswith("\\"):
                pending += code[:-1] + " "
            else:
                found.append(" ".join((pending + code).split()))
                pending = ""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    found += [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]
    return sorted({c for c in found if CHECKED.match(c)})


COMMANDS = sorted({(doc, command) for doc in DOCS for command in shown(doc)})


def makefile_variables() -> set[str]:
    return set(re.findall(r"^([A-Z_0-9]+)\s*[?:]?=", (REPO / "Makefile").read_text(), re.M))


def test_the_documents_show_commands():
    """The extraction finds what it should (the README's first steps, a bench command)."""
    commands = {c for _, c in COMMANDS}
    assert {"make run", "make test"} <= commands
    assert any(c.startswith("python -m bench.inference") for c in commands)


@pytest.mark.tensorflow
@pytest.mark.parametrize(("doc", "command"), COMMANDS)
def test_a_shown_command_parses(doc, command):
    words = shlex.split(command)
    while words[0] == "time" or re.fullmatch(r"[A-Z_0-9]+=\S*", words[0]):
        words = words[1:]
    if words[0] == "make":
        unknown = {w.split("=")[0] for w in words[1:] if "=" in w} - makefile_variables()
        assert not unknown, f"{doc}: `{command}` sets {sorted(unknown)}, which the Makefile does not read"
        result = subprocess.run(["make", "-n", *words[1:]], cwd=REPO, capture_output=True, text=True)
    elif words[0] == "sam":
        if not SAM.exists():
            missing("the SAM CLI's venv .venv-sam is not built (make test builds it)")
        with sam_offline() as env:
            result = subprocess.run([str(SAM), *words[1:], "--help"], cwd=REPO, env=env, capture_output=True, text=True)
    else:
        assert words[1] == "-m", f"{doc}: `{command}`: run a module with python -m"
        env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
        command_line = [sys.executable, "-c", PARSE_ONLY, *words[2:]]
        result = subprocess.run(command_line, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{doc}: `{command}`:\n{result.stderr[-2000:]}"


def test_every_page_under_docs_is_reachable_from_the_readme_and_every_link_resolves():
    """README.md is the front door: each page is one link away, and no relative link points at nothing."""
    readme = (REPO / "README.md").read_text()
    for page in (REPO / "docs").glob("*.md"):
        assert f"](docs/{page.name})" in readme, f"README.md does not link docs/{page.name}"
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", (REPO / doc).read_text()):
            assert ((REPO / doc).parent / target).exists(), f"{doc} links {target}, which does not exist"

import ast
import re
import tomllib
from pathlib import Path

from harness import REPO, TEMPLATE
from harness.dockerfile import handler, ignored


def test_lambda_requirements_match_the_serve_group():
    groups = tomllib.loads((REPO / "pyproject.toml").read_text())["dependency-groups"]
    requirements = [
        line.strip()
        for line in (REPO / "lambda_fn" / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert sorted(requirements) == sorted(groups["serve"])
    assert not any(r.startswith(("tensorflow", "keras")) for r in requirements)


def test_the_sam_transform_is_the_one_sam_cli_runs():
    """tests/infra translate the template with the dev group's aws-sam-translator: the version the pinned
    aws-sam-cli requires (its wheel's metadata, in .venv-sam that make test builds)."""
    from email.parser import Parser

    from harness.needs import missing

    groups = tomllib.loads((REPO / "pyproject.toml").read_text())["dependency-groups"]
    (translator,) = [pin for pin in groups["dev"] if isinstance(pin, str) and pin.startswith("aws-sam-translator")]
    found = sorted((REPO / ".venv-sam").glob("lib/python3*/site-packages/aws_sam_cli-*.dist-info/METADATA"))
    if not found:
        missing("the SAM CLI's venv .venv-sam is not built (make test builds it)")
    requires = Parser().parsestr(found[-1].read_text()).get_all("Requires-Dist") or []
    assert translator in [r.replace(" ", "") for r in requires]


# The rooms of the repository, and the rooms each may not import: the function imports no other room (its image
# holds it alone); the catalog tools import the function's package, never the reverse; tests/ and bench/ share
# helpers through harness/ (tests/bench/ tests bench/); no stage imports tests, bench or harness.
ROOMS = ("lambda_fn", "catalog", "project", "train", "convert", "harness", "bench", "tests")
MAY_NOT_IMPORT = {
    "lambda_fn": set(ROOMS) - {"lambda_fn"},
    "project": set(ROOMS) - {"project"},
    "catalog": {"train", "convert", "harness", "bench", "tests"},
    "train": {"catalog", "convert", "harness", "bench", "tests"},
    "convert": {"catalog", "harness", "bench", "tests"},
    "harness": {"bench", "tests"},
    "bench": {"tests"},
    "tests": {"bench"},
}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, by its full dotted name (import a.b, from a.b import c, from a import b)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return found


def test_each_room_imports_only_the_rooms_below_it():
    for room, banned in MAY_NOT_IMPORT.items():
        for path in (REPO / room).rglob("*.py"):
            if path.is_relative_to(REPO / "tests" / "bench"):
                continue
            roots = {name.split(".")[0] for name in imported_modules(path)}
            assert not roots & banned, f"{path.relative_to(REPO)} imports {sorted(roots & banned)}"


def test_the_image_holds_the_function_and_nothing_else():
    """What .dockerignore admits of lambda_fn/ is what the image's handlers import, transitively (and their data):
    the image's CMD, and the commands the template runs the same image with (the PreTraffic hook)."""
    commands = [handler(), *re.findall(r'Command: \["([\w.]+)"\]', TEMPLATE.read_text())]
    needed, queue = set(), [command.rsplit(".", 1)[0] for command in commands]
    while queue:
        module = queue.pop()
        path = REPO / (module.replace(".", "/") + ".py")
        if module in needed or not path.is_file():
            continue
        needed.add(module)
        queue += [name for name in imported_modules(path) if name.split(".")[0] == "lambda_fn"]
    shipped = {
        path.relative_to(REPO).with_suffix("").as_posix().replace("/", ".")
        for path in (REPO / "lambda_fn").glob("*.py")
        if not ignored(path.relative_to(REPO).as_posix()) and path.name != "__init__.py"
    }
    assert shipped == needed, f"in the image but not used: {shipped - needed}; used but left out: {needed - shipped}"
    for room in set(ROOMS) - {"lambda_fn"}:
        assert ignored(f"{room}/__init__.py"), f"{room}/ is in the image's build context"


def test_conftest_files_hold_fixtures_and_no_test_imports_them():
    """Helpers live in harness/; a conftest.py holds fixtures (and what they alone use)."""
    for path in (REPO / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                assert not node.module.endswith("conftest"), f"{path.relative_to(REPO)} imports {node.module}"

import ast
import tomllib

from harness import REPO


def test_lambda_requirements_match_the_serve_group():
    groups = tomllib.loads((REPO / "pyproject.toml").read_text())["dependency-groups"]
    requirements = [
        line.strip()
        for line in (REPO / "lambda_fn" / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert sorted(requirements) == sorted(groups["serve"])
    assert not any(r.startswith(("tensorflow", "keras")) for r in requirements)


def test_lambda_code_never_imports_training_code():
    for path in (REPO / "lambda_fn").glob("*.py"):
        text = path.read_text()
        for forbidden in ("import tensorflow", "import keras", "from train", "from convert"):
            assert forbidden not in text, (path, forbidden)


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


def test_tests_and_bench_share_helpers_through_harness_only():
    """bench/ and tests/ import harness/, never each other (but tests/bench/, which tests bench/); no stage
    imports any of the three."""
    forbidden = {"tests": {"bench"}, "bench": {"tests"}, "harness": {"tests", "bench"}}
    forbidden |= {stage: {"tests", "bench", "harness"} for stage in ("train", "convert", "lambda_fn")}
    for folder, banned in forbidden.items():
        for path in (REPO / folder).rglob("*.py"):
            if path.is_relative_to(REPO / "tests" / "bench"):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    roots = {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    roots = {(node.module or "").split(".")[0]}
                else:
                    continue
                assert not roots & banned, f"{path.relative_to(REPO)} imports {sorted(roots & banned)}"


def test_conftest_files_hold_fixtures_and_no_test_imports_them():
    """Helpers live in harness/; a conftest.py holds fixtures (and what they alone use)."""
    for path in (REPO / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                assert not node.module.endswith("conftest"), f"{path.relative_to(REPO)} imports {node.module}"

import tomllib

from tests.conftest import REPO


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

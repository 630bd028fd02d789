import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

TEMPLATES = sorted((REPO / "infra").glob("*.yaml"))


def test_there_is_a_template():
    assert [t.name for t in TEMPLATES] == ["template.yaml"]


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_cfn_lint_finds_no_errors_or_warnings(template):
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run([str(cfn_lint), str(template)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_every_lambda_setting_is_declared_in_the_template():
    """The environment variables lambda_fn/settings.py reads are the ones the template sets."""
    import re

    from lambda_fn import settings

    class Recording(dict):
        read: set[str] = set()

        def get(self, key, default=None):
            self.read.add(key)
            return super().get(key, default)

    settings.load(Recording())
    read = Recording.read
    assert {"MODEL_DIR", "MODEL_THREADS", "MAX_URLS", "LOG_LEVEL"} <= read
    template = (REPO / "infra" / "template.yaml").read_text()
    declared = set(re.findall(r"^          ([A-Z_]+):", template, flags=re.M))
    assert read == declared


def test_model_dir_in_the_template_is_where_the_image_puts_the_bundle():
    import re

    from tests.dockerfile import instructions

    env = dict(rest.split("=", 1) for op, rest in instructions() if op == "ENV")
    template = (REPO / "infra" / "template.yaml").read_text()
    declared = re.search(r"^          MODEL_DIR: (\S+)", template, flags=re.M)
    assert declared, "the template declares no MODEL_DIR"
    assert env["MODEL_DIR"].replace("${LAMBDA_TASK_ROOT}", "/var/task") == declared.group(1)


def test_samconfig_builds_this_template():
    import tomllib

    config = tomllib.loads((REPO / "samconfig.toml").read_text())
    assert (REPO / config["default"]["build"]["parameters"]["template_file"]).is_file()
    assert "CAPABILITY_IAM" in config["default"]["deploy"]["parameters"]["capabilities"]

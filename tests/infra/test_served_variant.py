"""The variant each architecture serves is chosen once, in the Makefile, and every default agrees with it."""

import subprocess

import pytest

from harness import REPO
from harness.dockerfile import instructions

PLATFORMS = {"x86_64": "PLATFORM=", "arm64": "PLATFORM=linux/arm64"}  # the template's Architecture: make's PLATFORM


def make_variable(name: str, *assignments: str) -> str:
    """A variable's value as make sees it, with these command-line assignments."""
    rule = "print-%: ; @echo $($*)"
    command = ["make", "-s", "--no-print-directory", "--eval", rule, f"print-{name}", *assignments]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()


def served(arch: str, *assignments: str) -> str:
    return make_variable("MODEL_VARIANT", PLATFORMS[arch], *assignments)


@pytest.mark.parametrize("arch", PLATFORMS)
def test_make_image_builds_the_variant_its_architecture_serves(arch):
    assert served(arch) == make_variable(f"SERVED_VARIANT_{arch}")
    # the choice follows PLATFORM: another choice for this architecture reaches its image and not the other's
    other = "float16" if served(arch) != "float16" else "int8-dynamic"
    (elsewhere,) = set(PLATFORMS) - {arch}
    assert served(arch, f"SERVED_VARIANT_{arch}={other}") == other
    assert served(elsewhere, f"SERVED_VARIANT_{arch}={other}") == served(elsewhere)


def test_the_dockerfile_and_the_template_default_to_what_every_architecture_serves(template):
    from convert.convert import DEFAULT_VARIANTS

    dockerfile = dict(rest.split("=", 1) for op, rest in instructions() if op == "ARG" and "=" in rest)
    parameters = template["Parameters"]
    assert set(parameters["Architecture"]["AllowedValues"]) == set(PLATFORMS)
    for arch in PLATFORMS:
        # one template default for every Architecture: map ModelVariant per architecture before these differ
        assert served(arch) == parameters["ModelVariant"]["Default"], arch
        assert served(arch) in DEFAULT_VARIANTS  # a variant make convert writes
    assert dockerfile["MODEL_VARIANT"] == served(parameters["Architecture"]["Default"])

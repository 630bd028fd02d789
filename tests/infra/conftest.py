"""The SAM template, as written and as AWS's SAM transform turns it into CloudFormation."""

import pytest

from harness import TEMPLATE


def load_template() -> dict:
    """The template with its intrinsic functions (!Ref, !If ...) as CloudFormation's JSON form."""
    from cfnlint.decode import decode

    template, problems = decode(str(TEMPLATE))
    assert not problems, problems
    return template


@pytest.fixture(scope="session")
def template() -> dict:
    return load_template()


@pytest.fixture
def transformed(monkeypatch):
    """transformed(**parameters): the CloudFormation resources that `sam deploy` (AWS::Serverless transform)
    creates from the template, with these parameter values; an image URI stands in for the one sam builds."""
    from samtranslator.translator.transform import transform

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")  # the transform's pseudo parameters; nothing is called

    class NoManagedPolicies:
        def load(self) -> dict:
            return {}

    def run(**parameters: str) -> dict:
        template = load_template()
        template["Resources"]["Function"]["Properties"]["ImageUri"] = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/f:1"
        return transform(template, parameters, NoManagedPolicies())["Resources"]

    return run

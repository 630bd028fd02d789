"""The SAM template, as written and as AWS's SAM transform turns it into CloudFormation."""

import base64
import json

import pytest

from harness import REPO, TEMPLATE, servers


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
        for resource in template["Resources"].values():
            if resource.get("Properties", {}).get("PackageType") == "Image":  # the function and its PreTraffic hook
                resource["Properties"]["ImageUri"] = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/f:1"
        return transform(template, parameters, NoManagedPolicies())["Resources"]

    return run


@pytest.fixture
def deployed(transformed, template):
    """deployed(**parameters): the stack's resources as CloudFormation resolves them (harness/cfn.py)."""
    from harness.cfn import Stack

    return lambda **parameters: Stack(template, transformed(**parameters), parameters)


@pytest.fixture(scope="session")
def photo_url(tmp_path_factory):
    """The sample event's JPEG (infra/events/image.json), served over HTTP on 127.0.0.1."""
    root = tmp_path_factory.mktemp("photos")
    event = json.loads((REPO / "infra" / "events" / "image.json").read_text())
    (root / "photo.jpg").write_bytes(base64.b64decode(event["image"]))
    with servers.image_server(root) as url:
        yield f"{url}/images/photo.jpg"

"""The client's targets: --function invokes the stack's live alias, or the version --qualifier names, as a local
Lambda endpoint on 127.0.0.1 sees the requests boto3 sends."""

import json
import os
import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from catalog import client, tag
from harness import TEMPLATE
from harness.servers import Quiet, reply, serving

ANSWER = {
    "label": "hat",
    "probability": 0.9,
    "confident": True,
    "probabilities": [{"label": "hat", "probability": 0.9}],
}


class LambdaApi(Quiet):
    """Lambda's Invoke API: records each request's path and query, and the access key it was signed with;
    answers one prediction."""

    seen: list
    signed_by: list

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        url = urlsplit(self.path)
        self.seen.append((url.path, parse_qs(url.query)))
        self.signed_by += re.findall(r"Credential=([^/]+)/", self.headers.get("Authorization", ""))
        reply(self, 200, json.dumps(ANSWER).encode())


@pytest.fixture
def signed_by() -> list:
    """The access key of each request the Lambda API below got, in order."""
    return []


@pytest.fixture
def lambda_api(monkeypatch, names_do_not_resolve, signed_by) -> Iterator[list]:
    """Where boto3 sends --function's invokes (AWS_ENDPOINT_URL_LAMBDA), with credentials of its own; a lookup of
    AWS's real name fails instead of leaving this machine."""
    seen: list = []
    with serving(type("Handler", (LambdaApi,), {"seen": seen, "signed_by": signed_by})) as url:
        for name, value in {
            "AWS_ENDPOINT_URL_LAMBDA": url,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        yield seen


INVOKE = "/2015-03-31/functions/fashion-classifier/invocations"


@pytest.mark.parametrize(
    "flags, qualifier", [([], "live"), (["--qualifier", "7"], "7"), (["--qualifier", "$LATEST"], "$LATEST")]
)
def test_function_invokes_the_live_alias_unless_a_qualifier_names_another(lambda_api, capsys, flags, qualifier):
    assert client.main(["--function", "fashion-classifier", *flags, "http://127.0.0.1:9/shirt.jpg"]) == 0
    assert lambda_api == [(INVOKE, {"Qualifier": [qualifier]})]
    assert json.loads(capsys.readouterr().out)["label"] == "hat"


def test_an_endpoint_is_one_function_without_versions(lambda_api, capsys):
    """The RIE and the local server run one function: no qualifier unless one is named."""
    endpoint = os.environ["AWS_ENDPOINT_URL_LAMBDA"]
    assert client.main(["--endpoint", endpoint, "http://127.0.0.1:9/shirt.jpg"]) == 0
    assert client.main(["--endpoint", endpoint, "--qualifier", "3", "http://127.0.0.1:9/shirt.jpg"]) == 0
    assert lambda_api == [
        ("/2015-03-31/functions/function/invocations", {}),
        ("/2015-03-31/functions/function/invocations", {"Qualifier": ["3"]}),
    ]


def test_credentials_another_caller_resolved_first_are_not_the_clients(lambda_api, signed_by, monkeypatch, capsys):
    """boto3's default session keeps the first credentials it resolves in the process (a library's, a test's):
    the client reads the environment as it is when it is made."""
    import boto3

    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "someone-else")
        env.setenv("AWS_SECRET_ACCESS_KEY", "not-the-shops")
        boto3.client("sts", region_name="us-east-1")  # the default session resolves, and keeps, these keys
        assert boto3.DEFAULT_SESSION.get_credentials().access_key == "someone-else"
    assert client.main(["--function", "fashion-classifier", "http://127.0.0.1:9/shirt.jpg"]) == 0
    assert signed_by == ["local"] and json.loads(capsys.readouterr().out)["label"] == "hat"


def test_the_tagger_invokes_the_live_alias_too(lambda_api, tmp_path):
    out = tmp_path / "tags.jsonl"
    assert tag.main(["http://127.0.0.1:9/shirt.jpg", "--function", "fashion-classifier", "--out", str(out)]) == 0
    assert lambda_api == [(INVOKE, {"Qualifier": ["live"]})]


def test_the_alias_is_the_one_the_template_publishes():
    (alias,) = re.findall(r"^\s+AutoPublishAlias:\s*(\S+)", TEMPLATE.read_text(), re.MULTILINE)
    assert alias == client.LIVE_ALIAS


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--api", "http://127.0.0.1:9", "--qualifier", "7"], "--api calls the stack's live alias"),
        (["--function", "f", "--qualifier", "live alias"], "is not a version number, an alias name or $LATEST"),
        (["--function", "f", "--qualifier", ""], "is not a version number"),
    ],
)
def test_a_qualifier_that_cannot_be_is_refused_by_name(capsys, flags, message):
    for main in (client.main, tag.main):
        with pytest.raises(SystemExit):
            main([*flags, "http://127.0.0.1:9/shirt.jpg"])
        assert message in capsys.readouterr().err

"""AWS's SAM CLI on the template as a user runs it: sam build, sam local invoke with the sample events, and
sam local start-api answering as the deployed HTTP API would (the same bodies as the in-process handler)."""

import base64
import json
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import REPO
from harness.containers import ensure_base, find_engine, free_port, make_context
from harness.emf import emf_problems
from harness.needs import missing
from harness.sam import SAM, invoked, sam, sam_environment
from harness.servers import wait_for

pytestmark = pytest.mark.container
SAMPLES = REPO / "infra" / "events"


@pytest.fixture(scope="module")
def built(tiny_bundle, tmp_path_factory) -> Iterator[tuple[dict, Path]]:
    """(SAM's environment, a project folder where `sam build` has built the function's image)."""
    if not SAM.exists():
        missing(f"{SAM} is missing: make test builds .venv-sam (pyproject.toml's aws-sam group)")
    try:
        engine = find_engine()
    except RuntimeError as err:
        missing(str(err))
    ensure_base(engine)
    project = make_context(tmp_path_factory.mktemp("project"), tiny_bundle)
    with sam_environment(engine) as env:
        result = sam(env, project, "build")  # samconfig.toml names infra/template.yaml
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "Build Succeeded" in result.stdout + result.stderr
        yield env, project


def built_function(project: Path) -> dict:
    """The function as sam build left it in .aws-sam/build/template.yaml."""
    from cfnlint.decode import decode

    template, problems = decode(str(project / ".aws-sam" / "build" / "template.yaml"))
    assert not problems, problems
    return template["Resources"]["Function"]


def test_sam_build_builds_the_image_with_the_default_variant(built):
    _, project = built
    function = built_function(project)
    assert function["Properties"]["ImageUri"] == "function:latest"  # the local image sam local runs
    assert function["Metadata"]["DockerBuildArgs"] == {"MODEL_VARIANT": "float32"}


@pytest.mark.parametrize("event", ["image.json", "page.json", "api-image.json"])
def test_sam_local_invoke_answers_the_sample_events_as_the_handler_does(built, app, event):
    env, project = built
    # The function's log as SAM CLI shows it holds the request's one record, valid EMF (lambda_fn/metrics.py).
    # SAM CLI's log stream sometimes ends before the container's last lines (seen in CI: START, then nothing):
    # the record is looked for in up to three invocations, each answer checked.
    for _ in range(3):
        result = sam(env, project, "local", "invoke", "Function", "-e", str(SAMPLES / event), "--skip-pull-image")
        assert invoked(result) == app.lambda_handler(json.loads((SAMPLES / event).read_text()), None)
        lines = [*result.stdout.splitlines(), *result.stderr.splitlines()]
        requests = [
            r for r in map(json.loads, (x for x in lines if x.startswith('{"'))) if r.get("message") == "request"
        ]
        if requests:
            break
    assert len(requests) == 1 and emf_problems(requests[0]) == [], result.stderr[-3000:]


@pytest.fixture(scope="module")
def api(built) -> Iterator[str]:
    """sam local start-api on 127.0.0.1, one warm container (as a warm Lambda instance): its base URL."""
    env, project = built
    port = free_port()
    command = [str(SAM), "local", "start-api", "--host", "127.0.0.1", "--port", str(port), "--skip-pull-image"]
    server = subprocess.Popen(
        [*command, "--warm-containers", "EAGER"], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        wait_for(port, 180)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        output = server.communicate(timeout=60)[0]
        print(output.decode(errors="replace")[-3000:])


def request(url: str, method: str, body: bytes | None = None, headers: dict | None = None):
    """(status, headers, body) of one HTTP request, errors included."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=180) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def handler_answer(app, method: str, path: str, body: str = "", headers: dict | None = None) -> dict:
    """The in-process handler's response to the HTTP API v2 event API Gateway makes of this request."""
    event = {
        "version": "2.0",
        "rawPath": path,
        "headers": headers or {},
        "requestContext": {"http": {"method": method, "path": path}},
        "body": body,
        "isBase64Encoded": False,
    }
    return app.lambda_handler(event, None)


def test_start_api_serves_the_page(api, app):
    status, headers, body = request(f"{api}/", "GET")
    expected = handler_answer(app, "GET", "/")
    assert status == 200 and body.decode() == expected["body"]
    assert headers["Content-Type"] == expected["headers"]["Content-Type"]
    assert headers["Content-Security-Policy"] == expected["headers"]["Content-Security-Policy"]


def test_start_api_classifies_a_json_post(api, app):
    image = json.loads((SAMPLES / "image.json").read_text())["image"]
    body = json.dumps({"image": image})
    status, headers, answer = request(f"{api}/predict", "POST", body.encode(), {"Content-Type": "application/json"})
    expected = handler_answer(app, "POST", "/predict", body, {"content-type": "application/json"})
    assert status == 200 and json.loads(answer) == json.loads(expected["body"])
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert json.loads(answer)["label"] in app.MODEL.labels
    base64.b64decode(image, validate=True)


def test_start_api_answers_a_bad_request_with_its_error(api, app):
    body = json.dumps({"picture": "x"})
    status, _, answer = request(f"{api}/predict", "POST", body.encode(), {"Content-Type": "application/json"})
    expected = handler_answer(app, "POST", "/predict", body, {"content-type": "application/json"})
    assert status == expected["statusCode"] == 400
    assert json.loads(answer) == json.loads(expected["body"])


def test_start_api_answers_the_cors_preflight_from_the_template(api):
    """API Gateway answers OPTIONS itself from CorsConfiguration; the function never sees it."""
    headers = {"Origin": "https://shop.example.com", "Access-Control-Request-Method": "POST"}
    status, answer_headers, _ = request(f"{api}/predict", "OPTIONS", None, headers)
    assert status in (200, 204)
    assert answer_headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in answer_headers["Access-Control-Allow-Methods"]
    assert "content-type" in answer_headers["Access-Control-Allow-Headers"].lower()


def test_sam_build_takes_the_model_variant_as_a_parameter(built, tiny_bundles):
    """Last in this file: it builds the function's image again, with the int8-dynamic bundle."""
    env, project = built
    shutil.copytree(tiny_bundles / "int8-dynamic", project / "artifacts" / "bundle" / "int8-dynamic")
    result = sam(env, project, "build", "--parameter-overrides", "ModelVariant=int8-dynamic")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert built_function(project)["Metadata"]["DockerBuildArgs"] == {"MODEL_VARIANT": "int8-dynamic"}
    invoke = ("local", "invoke", "Function", "-e", str(SAMPLES / "image.json"), "--skip-pull-image")
    # run with the template's default ModelVariant, the image's bundle is not the variant the stack declares
    refused = sam(env, project, *invoke)
    assert "pass the same ModelVariant to sam build and sam deploy" in refused.stdout + refused.stderr
    answer = invoked(sam(env, project, *invoke, "--parameter-overrides", "ModelVariant=int8-dynamic"))
    assert answer["model"]["name"].endswith("-int8-dynamic")

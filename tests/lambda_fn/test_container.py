"""The image: its CMD imports and answers (in the TensorFlow-free env too); built and run in a real engine."""

import importlib
import json
import shutil
import subprocess

import pytest

from tests.conftest import REPO, missing
from tests.dockerfile import instructions


def test_cmd_handler_imports_and_answers(app, load_event):
    (cmd,) = [json.loads(rest) for op, rest in instructions() if op == "CMD"]
    module_name, function_name = cmd[0].rsplit(".", 1)
    handler = getattr(importlib.import_module(module_name), function_name)
    body = handler(load_event("direct_url.json"), None)
    assert body["label"] in app.MODEL.labels and len(body["probabilities"]) == len(app.MODEL.labels)


AWS_BASE = "public.ecr.aws/lambda/python:3.12"  # Dockerfile.lambda's FROM
STANDIN = REPO / "tests" / "container" / "build-standin.sh"


def engine() -> str:
    found = subprocess.run([str(REPO / "infra" / "container-engine")], capture_output=True, text=True)
    if found.returncode:
        missing(found.stderr.strip())
    return found.stdout.strip()


def ensure_base(engine: str) -> str:
    """AWS's base image where it can be had; else the stand-in, built here from Debian packages. Says which."""
    if subprocess.run([engine, "image", "exists" if engine == "podman" else "inspect", AWS_BASE]).returncode == 0:
        return f"{AWS_BASE} (already here: AWS's, or a stand-in built before)"
    if subprocess.run([engine, "pull", AWS_BASE], capture_output=True, timeout=600).returncode == 0:
        return f"{AWS_BASE} (pulled from AWS)"
    subprocess.run([str(STANDIN), engine], check=True, timeout=900)
    return f"the stand-in for {AWS_BASE} (tests/container/build-standin.sh)"


@pytest.fixture(scope="module")
def image(tiny_bundle, tmp_path_factory):
    """make image, on a context of the repo's Dockerfile.lambda, .dockerignore and code, with the tiny bundle."""
    name = engine()
    print(f"\nbase image: {ensure_base(name)}; engine: {name}")
    context = tmp_path_factory.mktemp("context")
    for path in ("Dockerfile.lambda", ".dockerignore"):
        shutil.copy(REPO / path, context / path)
    shutil.copytree(REPO / "lambda_fn", context / "lambda_fn", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(tiny_bundle, context / "artifacts" / "bundle" / "float32")
    tag = "fashion-classifier:test"
    subprocess.run(["make", "-s", "image", f"IMAGE={tag}", f"IMAGE_CONTEXT={context}"], cwd=REPO, check=True)
    return name, tag


@pytest.mark.container
def test_the_image_answers_as_lambda_runs_it(image, runtime_api, app, load_event):
    """The container's awslambdaric polls a Runtime API served here; its answers are the in-process ones."""
    engine, tag = image
    container = subprocess.run(
        [engine, "run", "-d", "--rm", "--network", "host", "-e", f"AWS_LAMBDA_RUNTIME_API={runtime_api.address}"]
        + ["-e", "ALLOW_PRIVATE_URLS=true", tag],  # host network: the Runtime API and image server on 127.0.0.1
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    events = {
        "url": load_event("direct_url.json"),
        "image": load_event("direct_image.json"),
        "api-jpeg": load_event("http_v2_image.json"),  # API Gateway v2, a raw JPEG body
        "page": load_event("http_v2_page.json"),
        "unknown-field": {"picture": "x"},
        "bad-scheme": {"url": "gopher://example.com/hat.jpg"},
        "not-base64": {"image": "%%%"},
    }
    try:
        answers = {name: runtime_api.invoke(f"req-{name}", event, timeout=120) for name, event in events.items()}
    finally:
        logs = subprocess.run([engine, "logs", container], capture_output=True, text=True).stdout
        subprocess.run([engine, "rm", "-f", container], capture_output=True)
    for name, event in events.items():
        path, body = answers[name]
        assert path == f"/2018-06-01/runtime/invocation/req-{name}/response", (name, path, body, logs)
        assert body == app.lambda_handler(event, type("Ctx", (), {"aws_request_id": f"req-{name}"})), name
    assert answers["url"][1]["label"] in app.MODEL.labels
    assert json.loads(answers["api-jpeg"][1]["body"])["label"] in app.MODEL.labels
    assert answers["unknown-field"][1]["error"]["status"] == 400

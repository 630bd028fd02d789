"""The image: its CMD imports and answers (in the TensorFlow-free env too); built and run under AWS's RIE,
by the test and by `make rie`, for x86_64 and (through qemu) arm64."""

import importlib
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from harness import REPO, s3
from harness.containers import (
    INVOCATIONS,
    build_image,
    ensure_base,
    find_engine,
    free_port,
    invoke_rie,
    remove,
    run_under_rie,
)
from harness.dockerfile import handler
from harness.emf import emf_problems
from harness.needs import missing
from harness.servers import wait_for


def test_cmd_handler_imports_and_answers(app, load_event):
    module_name, function_name = handler().rsplit(".", 1)
    function = getattr(importlib.import_module(module_name), function_name)
    body = function(load_event("direct_url.json"), None)
    assert body["label"] in app.MODEL.labels and len(body["probabilities"]) == len(app.MODEL.labels)


def engine_or_missing() -> str:
    try:
        return find_engine()
    except RuntimeError as err:
        missing(str(err))


@pytest.fixture(scope="module")
def image(tiny_bundle, tmp_path_factory) -> tuple[str, str, Path]:
    """(engine, tag, build context): the image of the tiny bundle, built by make image on AWS's base or the
    stand-in."""
    engine = engine_or_missing()
    print(f"\nbase image: {ensure_base(engine)}; engine: {engine}")
    context = tmp_path_factory.mktemp("context")
    build_image("fashion-classifier:test", tiny_bundle, context)
    return engine, "fashion-classifier:test", context


@pytest.mark.container
def test_the_image_answers_under_aws_runtime_interface_emulator(image, app, load_event):
    """AWS's own RIE (in AWS's base image, or baked into the stand-in from the aws-sam-cli wheel) runs the image;
    every answer is the in-process handler's; its log holds the RIE's REPORT lines and JSON records only."""
    engine, tag, _ = image
    container, url = run_under_rie(engine, tag, handler(), "ALLOW_PRIVATE_URLS=true", "AWS_LAMBDA_LOG_FORMAT=JSON")
    events = {
        "url": load_event("direct_url.json"),
        "urls": load_event("direct_urls.json"),
        "image": load_event("image.json"),
        "api-jpeg": load_event("api-image.json"),  # API Gateway v2, a raw JPEG body
        "page": load_event("page.json"),
        "unknown-field": {"picture": "x"},
        "bad-scheme": {"url": "gopher://example.com/hat.jpg"},
        "not-base64": {"image": "%%%"},
    }
    try:
        answers = {name: invoke_rie(url, event) for name, event in events.items()}
    finally:
        logs = remove(engine, container)
    for name, event in events.items():
        assert answers[name] == app.lambda_handler(event, None), (name, logs)
    assert answers["url"]["label"] in app.MODEL.labels
    assert json.loads(answers["api-jpeg"]["body"])["label"] in app.MODEL.labels
    assert answers["unknown-field"]["error"]["status"] == 400
    lines = logs.splitlines()
    assert sum(line.startswith("REPORT RequestId: ") for line in lines) == len(events), logs  # the RIE's own
    ours = [line for line in lines if not line.startswith(("START RequestId", "END RequestId", "REPORT RequestId"))]
    records = [json.loads(line) for line in ours]  # every line the function writes is JSON, the runtime's too
    requests = [r for r in records if r.get("message") == "request"]
    assert len(requests) == len(events) and {r.get("input") for r in requests} >= {"url", "urls", "image", "upload"}
    assert all(emf_problems(r) == [] for r in requests), requests  # through awslambdaric's own JSON formatter


@pytest.mark.container
@pytest.mark.parametrize(
    "network, events",
    [("bridged", ["image.json", "page.json"]), ("host", ["direct_url.json", "page.json"])],
)
def test_make_rie_serves_the_image(image, app, load_event, network, events):
    """`make rie` as the README gives it: bridged, the image's own entry point starts the RIE (as AWS's does);
    on the host's network (HOST_NETWORK=1), a URL on the host's 127.0.0.1 is classified too."""
    engine, tag, context = image
    port, api_port = free_port(), free_port()
    variables = [f"IMAGE={tag}", f"IMAGE_CONTEXT={context}", f"RIE_PORT={port}", f"RIE_API_PORT={api_port}"]
    if network == "host":
        variables += ["HOST_NETWORK=1", "RIE_ENV=ALLOW_PRIVATE_URLS=true"]
    make = subprocess.Popen(
        ["make", "-s", "rie", *variables],
        cwd=REPO,
        start_new_session=True,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(port, 300)
        url = f"http://127.0.0.1:{port}{INVOCATIONS}"
        answers = {name: invoke_rie(url, load_event(name)) for name in events}
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        logs = make.communicate(timeout=60)[0]
        running = [engine, "ps", "-q", "--filter", f"ancestor={tag}"]
        for container in subprocess.run(running, capture_output=True, text=True).stdout.split():
            subprocess.run([engine, "rm", "-f", container], capture_output=True)
    for name, answer in answers.items():
        assert answer == app.lambda_handler(load_event(name), None), (name, logs)
    assert answers[events[0]]["label"] in app.MODEL.labels


@pytest.mark.container
def test_the_arm64_image_answers_as_the_x86_64_one(image, tiny_bundle, tmp_path_factory, app, load_event):
    """Graviton: Dockerfile.lambda built with --platform linux/arm64 (on AWS's arm64 base, or the arm64 stand-in,
    whose Python is Debian's python3.11: no arm64 CPython 3.12 comes from the registries) and run under the arm64
    RIE through qemu-user-static: our layers and the arm64 wheels, answering one image event."""
    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        missing("arm64 programs do not run here: qemu-user-static is not registered (tests/system-packages.sh)")
    engine = image[0]
    base = ensure_base(engine, "arm64")
    tag = "fashion-classifier:test-arm64"
    build_image(tag, tiny_bundle, tmp_path_factory.mktemp("context-arm64"), arch="arm64", base=base)
    inspected = json.loads(subprocess.run([engine, "image", "inspect", tag], capture_output=True, check=True).stdout)
    assert inspected[0]["Architecture"] == "arm64"
    container, url = run_under_rie(engine, tag, handler(), arch="arm64")
    try:
        answer = invoke_rie(url, load_event("image.json"))
        machine = subprocess.run([engine, "exec", container, "uname", "-m"], capture_output=True, text=True).stdout
    finally:
        logs = remove(engine, container)
    expected = app.lambda_handler(load_event("image.json"), None)
    assert machine.strip() == "aarch64", logs
    assert answer["label"] == expected["label"], logs
    for ours, theirs in zip(answer["probabilities"], expected["probabilities"], strict=True):
        assert ours["label"] == theirs["label"] and abs(ours["probability"] - theirs["probability"]) < 1e-4


@pytest.mark.container
def test_the_image_classifies_a_photo_in_s3(image, app, catalog, s3_server, batch_event):
    """boto3 is in the image, and the image reads the catalog's photo from the real S3 (on the host's 127.0.0.1:
    run_under_rie uses the host's network) as the in-process handler does."""
    engine, tag, _ = image
    settings = [f"{name}={value}" for name, value in s3_server.environment().items()]
    container, url = run_under_rie(engine, tag, handler(), *settings, f"CATALOG_BUCKET={s3.TEST_BUCKET}")
    event = batch_event(catalog["hat"], "2.0")
    try:
        answer = invoke_rie(url, event)
    finally:
        logs = remove(engine, container)
    assert answer == app.lambda_handler(event, None), logs
    assert answer["results"][0]["resultCode"] == "Succeeded"

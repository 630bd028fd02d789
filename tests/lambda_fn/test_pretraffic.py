"""The PreTraffic hook (lambda_fn/pretraffic.py) against a real function, lambda_fn.app on the tiny bundle, and
Lambda's and CodeDeploy's APIs as botocore's service models define them (a Stubber validates every request and
response against them; nothing leaves the machine)."""

import base64
import io
import json
import logging
import shutil

import botocore.session
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from lambda_fn import pretraffic
from lambda_fn.logs import JsonLines

EVENT = {"DeploymentId": "d-EXAMPLE12", "LifecycleEventHookExecutionId": "execution-1"}
VERSION_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:fashion:7"


def aws_client(service: str):
    session = botocore.session.get_session()
    return session.create_client(service, "eu-west-1", aws_access_key_id="test", aws_secret_access_key="test")


@pytest.fixture
def invoke_app(app, caplog):
    """The hook's view of a version: the handler's answer, and its log lines as Lambda's JSON format has them."""

    def invoke(event: dict) -> tuple[dict, list[str]]:
        caplog.clear()
        with caplog.at_level(logging.INFO):
            answer = app.lambda_handler(event, None)
        return answer, [JsonLines().format(r) for r in caplog.records]

    return invoke


@pytest.fixture
def own_bundle(tiny_bundle, tmp_path):
    """A copy of the tiny bundle, its model.json to change."""
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    return copy


def edit_meta(bundle, change) -> None:
    meta = json.loads((bundle / "model.json").read_text())
    change(meta)
    (bundle / "model.json").write_text(json.dumps(meta))


def test_the_conversion_puts_a_labelled_photo_per_class_in_the_bundle(tiny_bundle):
    meta = json.loads((tiny_bundle / "model.json").read_text())
    assert [c["truth"] for c in meta["checks"]] == meta["labels"]
    assert all((tiny_bundle / c["file"]).stat().st_size > 0 and c["label"] in meta["labels"] for c in meta["checks"])


def test_a_version_that_keeps_the_bundles_promises_passes(invoke_app, tiny_bundle):
    assert pretraffic.check(invoke_app, tiny_bundle) == []


def test_a_version_serving_another_model_fails(invoke_app, tiny_bundles):
    """The function serves the float32 bundle; the hook holds int8-dynamic's promises: another digest (and, where
    float32 runs slower than int8-dynamic's conversion measured on this CPU, its latency too)."""
    problems = pretraffic.check(invoke_app, tiny_bundles / "int8-dynamic")
    kinds = ("served model", "probability", "answered", "median inference")
    assert len(problems) >= 3 and all(any(kind in p for kind in kinds) for p in problems)
    assert any("model.json's is" in p for p in problems)


def test_a_wrong_label_fails(invoke_app, own_bundle):
    def relabel(meta):
        first = meta["checks"][0]
        first["label"] = next(label for label in meta["labels"] if label != first["label"])

    edit_meta(own_bundle, relabel)
    (problem,) = pretraffic.check(invoke_app, own_bundle)
    assert problem.startswith("checks/00.jpg: answered")


def test_a_slow_model_fails(invoke_app, own_bundle):
    edit_meta(own_bundle, lambda meta: meta["parity"].update(latency_ms_1_thread=1e-6))
    (problem,) = pretraffic.check(invoke_app, own_bundle)
    assert problem.startswith("median inference") and "on one thread" in problem


def test_a_bundle_without_photos_proves_nothing(invoke_app, own_bundle):
    edit_meta(own_bundle, lambda meta: meta.pop("checks"))
    assert pretraffic.check(invoke_app, own_bundle) == [
        f"{own_bundle / 'model.json'} names no check photos: convert the model again (make convert)"
    ]


def test_a_version_that_cannot_start_fails():
    """Lambda's answer for a function that raised at start (a bundle of the wrong variant, say)."""
    failed = {"errorMessage": "MODEL_VARIANT='float32' ...", "errorType": "ValueError"}
    check = {"file": "checks/00.jpg", "label": "hat", "probability": 0.9}
    assert pretraffic.answer_problems(check, failed, "abc") == [
        "checks/00.jpg: the new version failed: MODEL_VARIANT='float32' ..."
    ]


@pytest.mark.parametrize("bundle, status", [("float32", "Succeeded"), ("int8-dynamic", "Failed")])
def test_the_verdict_goes_to_codedeploy_in_its_api_shape(invoke_app, tiny_bundles, bundle, status):
    codedeploy = aws_client("codedeploy")
    with Stubber(codedeploy) as stub:
        stub.add_response(
            "put_lifecycle_event_hook_execution_status",
            {"lifecycleEventHookExecutionId": EVENT["LifecycleEventHookExecutionId"]},
            {
                "deploymentId": EVENT["DeploymentId"],
                "lifecycleEventHookExecutionId": EVENT["LifecycleEventHookExecutionId"],
                "status": status,
            },
        )
        assert pretraffic.run(EVENT, invoke_app, codedeploy, tiny_bundles / bundle)["status"] == status
        stub.assert_no_pending_responses()


def test_a_check_that_cannot_run_is_a_failure(tmp_path):
    codedeploy = aws_client("codedeploy")
    with Stubber(codedeploy) as stub:
        stub.add_response("put_lifecycle_event_hook_execution_status", {}, {**lower(EVENT), "status": "Failed"})
        verdict = pretraffic.run(EVENT, lambda event: ({}, []), codedeploy, tmp_path)  # no model.json there
        assert verdict["status"] == "Failed" and "could not run" in verdict["problems"][0]


def lower(event: dict) -> dict:
    return {
        "deploymentId": event["DeploymentId"],
        "lifecycleEventHookExecutionId": event["LifecycleEventHookExecutionId"],
    }


def test_the_new_version_is_invoked_through_lambdas_api_with_its_log_tail(invoke_app, tiny_bundle):
    """Lambda's Invoke as botocore's model has it: the version's ARN, synchronous, the last 4 KB of its log
    (which must hold the request's record); the answers are the real function's for the bundle's photos."""
    lam = aws_client("lambda")
    checks = json.loads((tiny_bundle / "model.json").read_text())["checks"]
    with Stubber(lam) as stub:
        for check in checks:
            image = base64.b64encode((tiny_bundle / check["file"]).read_bytes()).decode()
            answer, lines = invoke_app({"image": image})
            tail = "\n".join(lines).encode()[-4096:]  # Lambda's LogResult: the last 4 KB, base64
            assert pretraffic.inference_ms(tail.decode().splitlines()) is not None, "the record is over 4 KB"
            payload = json.dumps(answer).encode()
            stub.add_response(
                "invoke",
                {
                    "StatusCode": 200,
                    "Payload": StreamingBody(io.BytesIO(payload), len(payload)),
                    "LogResult": base64.b64encode(tail).decode(),
                },
                {"FunctionName": VERSION_ARN, "InvocationType": "RequestResponse", "LogType": "Tail", "Payload": ANY},
            )
        assert pretraffic.check(pretraffic.lambda_invoker(lam, VERSION_ARN), tiny_bundle) == []
        stub.assert_no_pending_responses()

"""The function over photos in a real S3 (radosgw on 127.0.0.1): S3 Batch Operations' tasks (schemas 1.0 and
2.0) and new objects (S3's notification, EventBridge's event), read with the fetch's limits, answered in each
caller's format, tagged; S3's failures temporary, the photos' own permanent; no other bucket read."""

import json
import math
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import s3
from harness.containers import free_port
from lambda_fn import events
from lambda_fn.errors import TEMPORARY, RequestError
from lambda_fn.objects import ObjectRef


def invoke_batch(app, batch_event, obj: dict, schema: str = "1.0") -> tuple[dict, dict]:
    """(the whole response, its one result with resultString parsed)."""
    event = batch_event(obj, schema)
    response = app.lambda_handler(event, None)
    assert response["invocationSchemaVersion"] == schema
    assert response["invocationId"] == event["invocationId"]
    assert response["treatMissingKeysAs"] == "PermanentFailure"
    (result,) = response["results"]
    assert result["taskId"] == event["tasks"][0]["taskId"]
    assert len(result["resultString"]) <= events.RESULT_STRING_CHARS
    return response, {**result, "answer": json.loads(result["resultString"])}


def notification(obj: dict, encode=quote_plus) -> dict:
    """S3's ObjectCreated notification, its key URL-encoded as S3 encodes it (a form: a space is +)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": obj["Bucket"], "arn": f"arn:aws:s3:::{obj['Bucket']}"},
                    "object": {"key": encode(obj["Key"], safe="/"), "size": 1, "versionId": obj["VersionId"]},
                },
            }
        ]
    }


def eventbridge(obj: dict) -> dict:
    """EventBridge's "Object Created" from S3: the key as it is."""
    return {
        "version": "0",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "region": "us-east-1",
        "detail": {
            "version": "0",
            "bucket": {"name": obj["Bucket"]},
            "object": {"key": obj["Key"], "size": 1, "version-id": obj["VersionId"]},
            "reason": "PutObject",
        },
    }


def tags_of(s3_server, obj: dict) -> dict[str, str]:
    params = {k: v for k, v in obj.items() if v}
    return {t["Key"]: t["Value"] for t in s3_server.client().get_object_tagging(**params)["TagSet"]}


@pytest.mark.parametrize("schema", events.BATCH_SCHEMAS)
@pytest.mark.parametrize("name", ["hat", "webp"])
def test_a_batch_task_answers_its_photo_in_the_result_string(app, catalog, batch_event, schema, name):
    _, result = invoke_batch(app, batch_event, catalog[name], schema)
    assert result["resultCode"] == "Succeeded", result
    answer = result["answer"]
    assert answer["label"] in app.MODEL.labels and 0 <= answer["probability"] <= 1
    assert isinstance(answer["confident"], bool) and ("candidates" in answer) != answer["confident"]
    assert answer["model"] == app.MODEL_ID["sha256"][:12]


@pytest.mark.parametrize(
    "name, code",
    [
        ("text", "not_an_image"),
        ("truncated", "not_an_image"),
        ("bomb", "image_too_large"),
        ("too-big", "payload_too_large"),
        ("missing", "object_not_found"),
        ("elsewhere", "bucket_not_allowed"),
    ],
)
def test_a_photo_that_can_never_be_classified_fails_its_task_for_good(app, catalog, batch_event, name, code):
    _, result = invoke_batch(app, batch_event, catalog[name], "2.0")
    assert (result["resultCode"], result["answer"]["error"]) == ("PermanentFailure", code), result


def test_no_object_outside_the_named_bucket_is_read(app, catalog, batch_event):
    """The other bucket's photo is readable with the same keys, yet the function never asks S3 for it."""
    from lambda_fn import objects

    asked: list[str] = []
    s3_client = objects.client(app.SETTINGS.fetch.connect_timeout, math.ceil(app.SETTINGS.fetch.total_timeout))
    s3_client.meta.events.register("before-call.s3.*", lambda params, **_: asked.append(params["url_path"]))
    _, result = invoke_batch(app, batch_event, catalog["elsewhere"])
    assert result["answer"]["error"] == "bucket_not_allowed" and asked == []
    _, result = invoke_batch(app, batch_event, catalog["pants"])
    assert result["resultCode"] == "Succeeded" and asked  # the same client does read the named bucket


@pytest.mark.parametrize("mode", ["stopped", "throttle", "error", "drip"])
def test_s3_failing_fails_the_task_for_now(app, catalog, batch_event, s3_at, mode, monkeypatch):
    """A stopped S3 (nothing on the port), throttling (503 SlowDown), a 500, a body slower than the fetch's
    time: TemporaryFailure, so Batch Operations retries the task."""
    monkeypatch.setattr(app, "SETTINGS", app.dataclasses.replace(app.SETTINGS, fetch=app.dataclasses.replace(
        app.SETTINGS.fetch, total_timeout=2.0)))  # fmt: skip
    if mode == "stopped":
        s3_at(f"http://127.0.0.1:{free_port()}")
        _, result = invoke_batch(app, batch_event, catalog["hat"])
    else:
        with s3.misbehaving_s3(mode) as endpoint:
            s3_at(endpoint)
            _, result = invoke_batch(app, batch_event, catalog["hat"])
    assert result["resultCode"] == "TemporaryFailure", result
    assert result["answer"]["error"] in TEMPORARY


def test_a_size_over_the_cap_is_refused_before_the_body_is_read(app, catalog, batch_event, s3_at):
    with s3.misbehaving_s3("huge") as endpoint:  # says 1 GB, sends nothing: a read would wait for it
        s3_at(endpoint)
        _, result = invoke_batch(app, batch_event, catalog["hat"])
    assert (result["resultCode"], result["answer"]["error"]) == ("PermanentFailure", "payload_too_large")
    assert "1073741824 bytes" in result["answer"]["message"]


@pytest.mark.parametrize("encode", [quote_plus, quote], ids=["plus", "percent"])
def test_a_new_photo_is_tagged_with_its_answer_and_keeps_its_tags(app, catalog, s3_server, encode):
    """S3 encodes a key's space as +; SAM CLI's sample events as %20: both decode to the key."""
    obj = catalog["hat"] if encode is quote_plus else catalog["pants"]
    answer = app.lambda_handler(notification(obj, encode), None)
    (result,) = answer["results"]
    assert result["label"] in app.MODEL.labels, result
    tags = tags_of(s3_server, obj)
    expected = {
        "category": result["label"],
        "probability": f"{result['probability']:.3f}",
        "needs-review": "false" if result["confident"] else "true",
    }
    assert tags.items() >= expected.items()
    if obj is catalog["pants"]:
        assert tags["shop"] == "north" and tags["season"] == "summer"  # the object's own tags are kept


def test_an_eventbridge_event_names_the_key_as_it_is(app, catalog, s3_server):
    """EventBridge does not encode the key: "red hat+1 ñ.jpg" is read as that, + and all."""
    (result,) = app.lambda_handler(eventbridge(catalog["hat"]), None)["results"]
    assert "label" in result, result
    assert tags_of(s3_server, catalog["hat"])["category"] == result["label"]


def test_a_new_file_that_is_no_photo_is_tagged_for_review(app, catalog, s3_server):
    (result,) = app.lambda_handler(eventbridge(catalog["text"]), None)["results"]
    assert result["error"]["code"] == "not_an_image"
    assert tags_of(s3_server, catalog["text"]) == {
        "category": "unclassified",
        "classify-error": "not_an_image",
        "needs-review": "true",
    }


def test_a_new_photo_s3_cannot_serve_now_fails_the_invocation_so_lambda_retries_it(app, catalog, s3_at):
    s3_at(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(events.RetryLater, match="S3 could not be reached"):
        app.lambda_handler(notification(catalog["hat"]), None)


def test_the_function_never_writes_an_object(app, catalog, s3_server):
    """Tagging is the only write (it fires no ObjectCreated event): the bucket's objects stay as they were."""
    client = s3_server.client()
    before = client.list_object_versions(Bucket=s3.TEST_BUCKET)["Versions"]
    app.lambda_handler(notification(catalog["webp"]), None)
    assert client.list_object_versions(Bucket=s3.TEST_BUCKET)["Versions"] == before


@given(st.text(min_size=1, max_size=300).filter(lambda k: not events.has_lone_surrogate(k)))
def test_keys_decode_as_each_event_encodes_them(key):
    obj = {"Bucket": s3.TEST_BUCKET, "Key": key, "VersionId": None}
    ref = ObjectRef(s3.TEST_BUCKET, key)
    assert events.parse(notification(obj), 10, 1).value == [ref]
    assert events.parse(eventbridge(obj), 10, 1).value == [ref]
    task = {"taskId": "t", "s3Key": quote_plus(key, safe="/"), "s3Bucket": s3.TEST_BUCKET}
    job = events.parse({"invocationSchemaVersion": "2.0", "invocationId": "i", "tasks": [task]}, 10, 1).value
    assert job == events.BatchTasks("2.0", "i", [("t", ref)])


@given(st.text(max_size=5000))
def test_a_result_string_stays_under_the_limit(message):
    answer = RequestError("not_an_image", message).body()
    text = events.result_string(answer, None)
    assert len(text) <= events.RESULT_STRING_CHARS
    assert json.loads(text)["error"] == "not_an_image"


@pytest.mark.parametrize(
    "event, why",
    [
        ({"invocationSchemaVersion": "3.0", "invocationId": "i", "tasks": []}, "not one of 1.0, 2.0"),
        ({"invocationSchemaVersion": "1.0", "invocationId": "i", "tasks": []}, "tasks must be a list of 1"),
        ({"invocationSchemaVersion": "1.0", "invocationId": "i", "tasks": [{"taskId": "t"}]}, "s3BucketArn"),
        ({"invocationSchemaVersion": "2.0", "invocationId": "i", "tasks": [{"taskId": "t", "s3Key": "k"}]}, "s3Bucket"),
        ({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete"}]}, "not an ObjectCreated"),
        ({"source": "aws.s3", "detail-type": "Object Deleted", "detail": {}}, "is not 'Object Created'"),
        ({"source": "aws.s3", "detail-type": "Object Created", "detail": {"bucket": {"name": "b"}}}, "object is"),
    ],
)
def test_a_malformed_s3_event_is_refused_by_name(event, why):
    with pytest.raises(RequestError, match=why) as refused:
        events.parse(event, 10, 1)
    assert refused.value.code == "invalid_request"


def test_credentials_another_caller_resolved_first_are_not_the_functions(app, catalog, batch_event, monkeypatch):
    """boto3's default session keeps the first credentials it resolves in the process (a library's, a test's):
    the function's client reads the environment as it is when the client is made."""
    import boto3

    from lambda_fn import objects

    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "someone-else")
        env.setenv("AWS_SECRET_ACCESS_KEY", "not-this-deployments")
        boto3.client("sts", region_name="us-east-1")  # the default session resolves, and keeps, these keys
    objects.client.cache_clear()
    _, result = invoke_batch(app, batch_event, catalog["pants"])
    assert result["resultCode"] == "Succeeded", result

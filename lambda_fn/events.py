"""Lambda events in, Lambda responses out: direct invocations and API Gateway (REST v1, HTTP v2).

Every way in becomes a Request: one image URL, a list of URLs, image
bytes, (GET / over HTTP) the page to try the model in a browser, or S3
objects: S3 Batch Operations' tasks (answered in its own response format),
and new objects that S3 (directly or through EventBridge) reports (tagged).
Validation happens here, at the boundary, with errors that say what was
wrong and what is accepted. Each event source is one row of SOURCES: how
to recognise its events, parse them into a Request, and shape the answer it
expects; an event no row recognises is a direct invocation (DIRECT).
Adding a source (an S3 notification, an SQS batch) is a parser and a row
here; if it asks for something no Kind is yet, a Kind here and its answer
in app.ANSWERS (a test checks every Kind has one); its trigger and
permissions go in infra/template.yaml.
"""

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import unquote_plus

from lambda_fn.errors import TEMPORARY, RequestError, echo, echo_all, has_lone_surrogate
from lambda_fn.objects import MAX_KEY_BYTES, ObjectRef

IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")
ROUTE = "/predict"
PAGE_ROUTE = "/"
PAGE = (Path(__file__).parent / "page.html").read_text()  # posts to "predict", relative to itself


def inline_hashes(tag: str, page: str) -> str:
    """CSP sources for a page's own inline <script> or <style>, by hash: no other inline code runs."""
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.DOTALL)
    return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in blocks)


def page_policy(page: str, images: str) -> str:
    """A page's policy: its own script and style, images from `images`; it calls nothing but its own server,
    and no other site may frame it (the review page, catalog/review.py, is held to it too)."""
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {inline_hashes('script', page)}",
            f"style-src {inline_hashes('style', page)}",
            f"img-src {images}",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


PAGE_POLICY = page_policy(PAGE, "* blob: data:")  # the photo it shows may come from anywhere
JSON_POLICY = "default-src 'none'; frame-ancestors 'none'"  # an answer is data: nothing in it may run
SECURITY_HEADERS = {  # on every response
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Strict-Transport-Security": "max-age=31536000",  # API Gateway serves HTTPS only; browsers ignore it over HTTP
}
MAX_URL_CHARS = 2048  # what browsers and CDNs reliably pass on; also bounds what an error can echo


class Kind(StrEnum):
    """What a request asks for; app.ANSWERS answers each. A str: the log record's `input` is its value."""

    URL = "url"  # one image URL (a JSON field)
    URLS = "urls"  # a list of them (a JSON field)
    IMAGE = "image"  # the image's bytes, base64 (a JSON field)
    UPLOAD = "upload"  # the image's bytes as a raw HTTP body
    PAGE = "page"  # GET /: the page to try the model in a browser
    S3_TASKS = "s3-batch"  # S3 Batch Operations' tasks: one object each (BatchTasks)
    S3_UPLOADS = "s3-upload"  # objects just created, which S3 or EventBridge reports: tagged with their answer


FIELDS = (Kind.URL, Kind.URLS, Kind.IMAGE)  # a JSON request holds exactly one of these


@dataclass(frozen=True)
class BatchTasks:
    """An S3 Batch Operations invocation: what its answer must repeat, and its tasks' objects."""

    schema: str  # invocationSchemaVersion: "1.0" or "2.0"
    invocation_id: str
    tasks: list[tuple[str, ObjectRef]]  # (taskId, its object)


@dataclass(frozen=True)
class Request:
    kind: Kind
    value: str | list[str] | bytes | BatchTasks | list[ObjectRef]


def is_http(event) -> bool:
    """API Gateway's proxy events: REST APIs send httpMethod, HTTP APIs version 2.0."""
    return isinstance(event, dict) and ("httpMethod" in event or event.get("version") == "2.0")


@dataclass(frozen=True)
class EventSource:
    name: str
    matches: Callable[[object], bool]
    parse: Callable[..., Request]  # (event, max_urls, max_bytes) -> Request, or RequestError
    respond: Callable[[int, dict | str, str], object]  # (status, body, CORS origin) -> what the source expects


def source_of(event) -> EventSource:
    """The first source whose events look like this one; DIRECT for any other."""
    return next((source for source in SOURCES if source.matches(event)), DIRECT)


def parse(event, max_urls: int, max_bytes: int) -> Request:
    return source_of(event).parse(event, max_urls, max_bytes)


def malformed(what: str) -> RequestError:
    return RequestError("invalid_request", f"malformed API Gateway event: {what}")


def string_field(container: dict, name: str, default: str = "") -> str:
    value = container.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise malformed(f"{name} must be a string, not {type(value).__name__}")
    return value


def method_and_path(event: dict) -> tuple[str, str]:
    """REST v1 keeps them at the top; HTTP API v2 keeps the method in requestContext.http."""
    if "httpMethod" in event:
        return string_field(event, "httpMethod"), string_field(event, "path")
    http = (event.get("requestContext") or {}).get("http") if isinstance(event.get("requestContext"), dict) else None
    if not isinstance(http, dict):
        raise malformed("a version 2.0 event needs requestContext.http.method")
    return string_field(http, "method"), string_field(event, "rawPath")


def parse_http(event: dict, max_urls: int, max_bytes: int) -> Request:
    method, path = method_and_path(event)
    if path == PAGE_ROUTE:
        if method not in ("GET", "HEAD"):
            raise RequestError("method_not_allowed", f"{echo(method)} {PAGE_ROUTE} is not supported; GET it")
        return Request(Kind.PAGE, b"")
    if path.rstrip("/") != ROUTE:
        raise RequestError("not_found", f"no route {echo(path)}; send POST {ROUTE} (or GET {PAGE_ROUTE}: the page)")
    if method != "POST":
        raise RequestError("method_not_allowed", f"{echo(method)} {ROUTE} is not supported; send POST")
    body = string_field(event, "body")
    encoded = event.get("isBase64Encoded", False)
    if not isinstance(encoded, bool | None):
        raise malformed(f"isBase64Encoded must be true or false, not {type(encoded).__name__}")
    if encoded:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise malformed("isBase64Encoded is true but the body is not base64") from None
    elif has_lone_surrogate(body):
        raise malformed("the body holds a lone surrogate, which is not valid Unicode text")
    else:
        raw = body.encode()
    if len(raw) > max_bytes:
        raise RequestError("payload_too_large", f"the body is {len(raw)} bytes; at most {max_bytes} are accepted")
    headers = event.get("headers") or {}
    if not isinstance(headers, dict):
        raise malformed(f"headers must be an object, not {type(headers).__name__}")
    lowered = {str(k).lower(): v for k, v in headers.items()}
    content_type = string_field(lowered, "content-type", "application/json").split(";")[0].strip().lower()
    if content_type in IMAGE_TYPES:
        return Request(Kind.UPLOAD, raw)
    if content_type != "application/json":
        raise RequestError(
            "unsupported_media_type",
            f"Content-Type {echo(content_type)} is not accepted; send "
            f'application/json ({{"url": ...}}) or an image ({", ".join(IMAGE_TYPES)})',
        )
    return parse_fields(parse_json(raw), max_urls, max_bytes)


def parse_json(raw: bytes):
    """JSON from a client; nesting deep enough to exhaust the parser's recursion is refused too."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise RequestError("invalid_json", 'the body\'s JSON is nested too deeply; send {"url": ...}') from None
    except ValueError as err:
        raise RequestError("invalid_json", f"the body is not valid JSON ({err})") from None


def parse_fields(payload, max_urls: int, max_bytes: int) -> Request:
    accepted = "give exactly one of: url (an image URL), urls (a list of image URLs), image (base64 bytes)"
    if not isinstance(payload, dict):
        raise RequestError("invalid_request", f"expected a JSON object; {accepted}")
    unknown = sorted(set(payload) - set(FIELDS))
    if unknown:
        raise RequestError("invalid_request", f"unknown field(s) {echo_all(unknown)}; {accepted}")
    present = [f for f in FIELDS if f in payload]
    if len(present) != 1:
        raise RequestError("invalid_request", accepted)
    field, value = present[0], payload[present[0]]
    if field == Kind.URL:
        if not isinstance(value, str) or not value:
            raise RequestError("invalid_request", "url must be a non-empty string")
        check_url_text(value)
    elif field == Kind.URLS:
        if not isinstance(value, list) or not value or not all(isinstance(u, str) and u for u in value):
            raise RequestError("invalid_request", "urls must be a non-empty list of URL strings")
        if len(value) > max_urls:
            raise RequestError("invalid_request", f"urls has {len(value)} items; at most {max_urls} are accepted")
        for url in value:
            check_url_text(url)
    else:
        value = decode_base64(value, max_bytes)
    return Request(field, value)


def check_url_text(url: str) -> None:
    """A URL the response may echo: short, and text that encodes (JSON's lone-surrogate escapes do not)."""
    if len(url) > MAX_URL_CHARS:
        raise RequestError("invalid_request", f"a URL of {len(url)} characters is too long; at most {MAX_URL_CHARS}")
    if has_lone_surrogate(url):
        raise RequestError("invalid_request", f"the URL {echo(url)} holds a lone surrogate, which is not valid text")


def decode_base64(value, max_bytes: int) -> bytes:
    if not isinstance(value, str):
        raise RequestError("invalid_request", "image must be a base64 string of the image file's bytes")
    if len(value) * 3 // 4 > max_bytes + 2:
        raise RequestError("payload_too_large", f"the image is over {max_bytes} bytes, the most accepted")
    try:
        return base64.b64decode("".join(value.split()), validate=True)  # tolerate line-wrapped base64
    except (binascii.Error, ValueError):
        raise RequestError("invalid_request", "image is not valid base64") from None


def http_response(status: int, body: dict | str, cors_origin: str) -> dict:
    """A JSON answer, or (a str) the page."""
    if isinstance(body, str):
        headers = {"Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": PAGE_POLICY}
    else:
        headers = {
            "Content-Type": "application/json",
            "Access-Control-Allow-Origin": cors_origin,
            "Content-Security-Policy": JSON_POLICY,
        }
    headers.update(SECURITY_HEADERS)
    return {
        "statusCode": status,
        "headers": headers,
        "body": body if isinstance(body, str) else json.dumps(body),
        "isBase64Encoded": False,
    }


def direct_answer(status: int, body: dict | str, cors_origin: str) -> dict | str:
    """A direct invocation gets the body itself: errors in it too, never raised (no retries of a bad photo)."""
    return body


def object_ref(bucket, key, version, encoded: bool, what: str) -> ObjectRef:
    """An object an event names, its key decoded where the event URL-encodes it (as a form: a space is +)."""
    if not isinstance(bucket, str) or not bucket:
        raise RequestError("invalid_request", f"{what}: the bucket must be a non-empty string")
    if not isinstance(key, str) or not key:
        raise RequestError("invalid_request", f"{what}: the object key must be a non-empty string")
    if encoded:
        try:
            key = unquote_plus(key, errors="strict")
        except UnicodeDecodeError:
            raise RequestError("invalid_request", f"{what}: the key {echo(key)} is not URL-encoded UTF-8") from None
    if has_lone_surrogate(key) or len(key.encode(errors="replace")) > MAX_KEY_BYTES:
        raise RequestError("invalid_request", f"{what}: the key {echo(key)} is not an S3 key (UTF-8, 1 to 1024 bytes)")
    if version is not None and not isinstance(version, str):
        raise RequestError("invalid_request", f"{what}: the version id must be a string or null")
    return ObjectRef(bucket, key, version or None)


def field(container, name: str, what: str):
    """A field an event must have, or an error naming it and the event."""
    if not isinstance(container, dict) or name not in container:
        raise RequestError("invalid_request", f"malformed {what}: {name} is missing")
    return container[name]


# S3 Batch Operations (LambdaInvoke): schema 1.0 names the bucket by its ARN, 2.0 by its name (and may carry
# userArguments, unused here); in both the key is URL-encoded as a form (a space is +), as in S3's notifications.
BATCH = "S3 Batch Operations event"
BATCH_SCHEMAS = ("1.0", "2.0")
RESULT_STRING_CHARS = 1024  # kept under: each answer goes whole into the completion report's CSV


def is_batch_operations(event) -> bool:
    return isinstance(event, dict) and "invocationSchemaVersion" in event and "tasks" in event


def batch_bucket(task: dict, schema: str) -> str:
    if schema == "2.0":
        return field(task, "s3Bucket", BATCH)
    arn = field(task, "s3BucketArn", BATCH)
    if not isinstance(arn, str) or not arn.startswith("arn:") or ":s3:" not in arn:
        raise RequestError("invalid_request", f"malformed {BATCH}: s3BucketArn {echo(arn)} is not a bucket's ARN")
    return arn.rsplit(":", 1)[-1]


def parse_batch_operations(event: dict, max_urls: int, max_bytes: int) -> Request:
    schema, invocation_id = event.get("invocationSchemaVersion"), field(event, "invocationId", BATCH)
    if schema not in BATCH_SCHEMAS:
        raise RequestError(
            "invalid_request",
            f"{BATCH}: invocationSchemaVersion {echo(schema)} is not one of {', '.join(BATCH_SCHEMAS)}",
        )
    tasks = event["tasks"]
    if not isinstance(invocation_id, str) or not invocation_id:
        raise RequestError("invalid_request", f"malformed {BATCH}: invocationId must be a non-empty string")
    if not isinstance(tasks, list) or not 1 <= len(tasks) <= max_urls:
        raise RequestError("invalid_request", f"malformed {BATCH}: tasks must be a list of 1 to {max_urls} tasks")
    parsed = []
    for task in tasks:
        task_id = field(task, "taskId", BATCH)
        if not isinstance(task_id, str) or not task_id:
            raise RequestError("invalid_request", f"malformed {BATCH}: a taskId must be a non-empty string")
        bucket = batch_bucket(task, schema)
        ref = object_ref(bucket, field(task, "s3Key", BATCH), task.get("s3VersionId"), True, BATCH)
        parsed.append((task_id, ref))
    return Request(Kind.S3_TASKS, BatchTasks(schema, invocation_id, parsed))


def result_code(answer: dict) -> str:
    """Batch Operations retries a TemporaryFailure, and reports a PermanentFailure as the task's failure."""
    if "error" not in answer:
        return "Succeeded"
    return "TemporaryFailure" if answer["error"]["code"] in TEMPORARY else "PermanentFailure"


def result_string(answer: dict, model: dict | None) -> str:
    """One task's answer for the completion report, as compact JSON under RESULT_STRING_CHARS: the label, its
    probability, confident and the candidates (the catalog's tags), or the error's code and message."""
    if "error" in answer:
        short = {"error": answer["error"]["code"], "message": answer["error"]["message"]}
    else:
        short = {k: answer[k] for k in ("label", "probability", "confident", "candidates") if k in answer}
        short["model"] = (model or {}).get("sha256", "")[:12]
    text = json.dumps(short, separators=(",", ":"))
    while len(text) > RESULT_STRING_CHARS:  # only a message can be long: cut it to fit
        short["message"] = short.get("message", "")[: -(len(text) - RESULT_STRING_CHARS) - 3] + "..."
        text = json.dumps(short, separators=(",", ":"))
    return text


def batch_answer(status: int, body: dict | str, cors_origin: str) -> dict | str:
    """Batch Operations' response: each task's result code and string. An event too malformed to answer in
    that format gets the error itself (Batch Operations then fails the task, with the message in its report)."""
    if not isinstance(body, dict) or "invocation" not in body:
        return body
    invocation: BatchTasks = body["invocation"]
    return {
        "invocationSchemaVersion": invocation.schema,
        "treatMissingKeysAs": "PermanentFailure",
        "invocationId": invocation.invocation_id,
        "results": [
            {
                "taskId": answer["taskId"],
                "resultCode": result_code(answer),
                "resultString": result_string(answer, body.get("model")),
            }
            for answer in body["results"]
        ],
    }


# S3's notifications of new objects: directly (Records[].s3, the key URL-encoded as a form), or through
# EventBridge ("Object Created", detail.object.key as it is).
NOTIFICATION = "S3 notification"
EVENTBRIDGE = "EventBridge S3 event"


def is_s3_notification(event) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    return (
        isinstance(records, list)
        and bool(records)
        and isinstance(records[0], dict)
        and (records[0].get("eventSource") == "aws:s3")
    )


def parse_s3_notification(event: dict, max_urls: int, max_bytes: int) -> Request:
    records = event["Records"]
    if len(records) > max_urls:
        raise RequestError("invalid_request", f"{NOTIFICATION}: {len(records)} records; at most {max_urls}")
    refs = []
    for record in records:
        name = field(record, "eventName", NOTIFICATION)
        if not isinstance(name, str) or not name.startswith("ObjectCreated:"):
            raise RequestError(
                "invalid_request", f"{NOTIFICATION}: {echo(name)} is not an ObjectCreated event; subscribe to those"
            )
        s3 = field(record, "s3", NOTIFICATION)
        bucket, obj = field(s3, "bucket", NOTIFICATION), field(s3, "object", NOTIFICATION)
        bucket_name, key = field(bucket, "name", NOTIFICATION), field(obj, "key", NOTIFICATION)
        refs.append(object_ref(bucket_name, key, obj.get("versionId"), True, NOTIFICATION))
    return Request(Kind.S3_UPLOADS, refs)


def is_eventbridge_s3(event) -> bool:
    return isinstance(event, dict) and event.get("source") == "aws.s3" and "detail-type" in event


def parse_eventbridge_s3(event: dict, max_urls: int, max_bytes: int) -> Request:
    if event["detail-type"] != "Object Created":
        raise RequestError(
            "invalid_request", f"{EVENTBRIDGE}: {echo(event['detail-type'])} is not 'Object Created'; route those"
        )
    detail = field(event, "detail", EVENTBRIDGE)
    bucket, obj = field(detail, "bucket", EVENTBRIDGE), field(detail, "object", EVENTBRIDGE)
    key = field(obj, "key", EVENTBRIDGE)
    ref = object_ref(field(bucket, "name", EVENTBRIDGE), key, obj.get("version-id"), False, EVENTBRIDGE)
    return Request(Kind.S3_UPLOADS, [ref])


class RetryLater(Exception):
    """Raised to Lambda, so that it retries an S3 notification (an asynchronous invocation) that met a
    temporary failure: a returned error would end it, and the photo would stay untagged."""


def upload_answer(status: int, body: dict | str, cors_origin: str) -> dict | str:
    """The answers, for the log and the caller; a temporary failure fails the invocation (RetryLater)."""
    results = body.get("results", []) if isinstance(body, dict) else []
    later = [r for r in results if r.get("error", {}).get("code") in TEMPORARY]
    if later:
        raise RetryLater("; ".join(f"{r['object']}: {r['error']['message']}" for r in later))
    return body


SOURCES = [
    EventSource("api-gateway", is_http, parse_http, http_response),
    EventSource("s3-batch-operations", is_batch_operations, parse_batch_operations, batch_answer),
    EventSource("s3-notification", is_s3_notification, parse_s3_notification, upload_answer),
    EventSource("eventbridge-s3", is_eventbridge_s3, parse_eventbridge_s3, upload_answer),
]
# Whatever no source recognises is a direct invocation (boto3, the RIE, the console): its JSON fields, answered
# with the body itself; a malformed one is refused there, by name.
DIRECT = EventSource("direct", lambda event: True, parse_fields, direct_answer)

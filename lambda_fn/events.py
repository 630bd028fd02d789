"""Lambda events in, Lambda responses out: direct invocations and API Gateway (REST v1, HTTP v2).

Every way in becomes a Request: one image URL, a list of URLs, image
bytes, or (GET / over HTTP) the page to try the model in a browser.
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

from lambda_fn.errors import RequestError, echo, echo_all, has_lone_surrogate

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


FIELDS = (Kind.URL, Kind.URLS, Kind.IMAGE)  # a JSON request holds exactly one of these


@dataclass(frozen=True)
class Request:
    kind: Kind
    value: str | list[str] | bytes


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


SOURCES = [EventSource("api-gateway", is_http, parse_http, http_response)]
# Whatever no source recognises is a direct invocation (boto3, the RIE, the console): its JSON fields, answered
# with the body itself; a malformed one is refused there, by name.
DIRECT = EventSource("direct", lambda event: True, parse_fields, direct_answer)

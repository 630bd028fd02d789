"""Classify image URLs or local files through the function, wherever it runs.

    python -m catalog.client --function fashion-classifier https://example.com/shirt.jpg
    python -m catalog.client --function fashion-classifier --qualifier 7 shirt.jpg   # version 7, not the alias
    python -m catalog.client --endpoint http://localhost:9000 photo.jpg       # RIE or local server
    python -m catalog.client --api https://abc.execute-api.eu-west-1.amazonaws.com photo.jpg [--iam]

--function and --endpoint invoke with boto3 (a URL as {"url": ...}, a file
as {"image": base64}); --function calls the stack's live alias (what the API
calls: the version CodeDeploy rolled out, warmed by provisioned concurrency
and watched by the alias's alarms) unless --qualifier names another version
or alias. --api POSTs to <api>/predict (a URL as JSON, a file as its raw
bytes), signed with your AWS credentials when the API requires IAM
authorization (--iam). For a whole catalog, with concurrency, retries and
resume: python -m catalog.tag.
"""

import argparse
import base64
import http.client
import json
import math
import mimetypes
import os
import re
import stat
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from lambda_fn.errors import error_body
from lambda_fn.fetch import FetchLimits

RETRIED_STATUSES = {429, 502, 503, 504}  # throttled, or the gateway's own trouble: the same request may pass later
# An answer is a few KB (a urls batch of 10: ~10 KB): a larger one is not the function's, and is not read whole
MAX_ANSWER_BYTES = 1024 * 1024
MAX_RETRY_AFTER = 60.0  # seconds: a server asking for longer (or for 1e308) is waited on this long, then tried again
CHUNK = 64 * 1024
# a photo sent from disk: the function's own default limit (MAX_IMAGE_BYTES), so a file it would refuse is not sent
MAX_FILE_BYTES = FetchLimits.max_bytes
# The alias --function invokes unless --qualifier names another: the template's AutoPublishAlias, the one its API
# routes, provisioned concurrency, alarms and roll-outs are on ($LATEST, the default of a bare invoke, is none of them)
LIVE_ALIAS = "live"
QUALIFIER = re.compile(r"[A-Za-z0-9$_-]{1,128}")  # Lambda's: a version number, an alias name or $LATEST


class Transient(Exception):
    """A failure that another try may not meet: throttling, a gateway error, a broken connection."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


class Refused(Exception):
    """A local file that is not sent: its answer (an error body) says why."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.answer = error_body(status, code, message)


def read_photo(path: Path) -> bytes:
    """A photo's bytes from disk: a regular file (not a device, a pipe or a folder) of at most MAX_FILE_BYTES.
    Opened without blocking (a pipe would wait for a writer), checked, then read no further than the limit."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Refused(400, "invalid_input", f"{path} is not a regular file")
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise Refused(413, "payload_too_large", f"{path} is over {MAX_FILE_BYTES} bytes, the most a photo may be")
    return data


class TooLarge(Exception):
    """An answer over MAX_ANSWER_BYTES."""


def read_bounded(stream, deadline: float) -> bytes:
    """An answer's body, read as it arrives (read1: whatever one receive brings, so a server dripping its bytes
    is seen), until the end, MAX_ANSWER_BYTES (TooLarge) or the deadline (TimeoutError: a Transient)."""
    read = getattr(stream, "read1", stream.read)
    parts, size = [], 0
    while chunk := read(CHUNK):
        parts.append(chunk)
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise TooLarge(f"the answer is over {MAX_ANSWER_BYTES} bytes, more than any answer of the function")
        if time.monotonic() > deadline:
            raise TimeoutError("the answer took longer than the request's deadline to arrive")
    return b"".join(parts)


class Target:
    """Where the function runs: a deployed function or a local endpoint (RIE, local server) invoked with boto3,
    or the API Gateway endpoint. Each call returns the function's answer (a prediction, a list of them, or an
    error body) or raises Transient."""

    def __init__(
        self, function=None, endpoint=None, api=None, iam=False, region=None, timeout: float = 60, qualifier=None
    ):
        self.function, self.endpoint, self.api, self.iam, self.region = function, endpoint, api, iam, region
        self.timeout = timeout
        self.qualifier = qualifier or (LIVE_ALIAS if function else None)  # the RIE and local server have no aliases
        self.lambda_client = None if api else self.boto3_client()

    def boto3_client(self):
        import boto3
        from botocore.config import Config

        # one attempt per call: retrying (with backoff, honouring throttles) is the caller's
        config = Config(retries={"total_max_attempts": 1}, read_timeout=self.timeout, max_pool_connections=64)
        # a session of its own: boto3's default one keeps the first credentials any caller in the process resolved
        session = boto3.session.Session()
        if self.endpoint:  # the RIE and the local server accept any credentials
            return session.client(
                "lambda",
                endpoint_url=self.endpoint,
                region_name=self.region or "us-east-1",
                aws_access_key_id="local",
                aws_secret_access_key="local",
                config=config,
            )
        return session.client("lambda", region_name=self.region, config=config)

    def urls(self, urls: list[str]) -> dict:
        payload = {"url": urls[0]} if len(urls) == 1 else {"urls": urls}
        if self.api:
            return self.post(json.dumps(payload).encode(), "application/json")
        return self.invoke(payload)

    def file(self, path: Path) -> dict:
        data = read_photo(path)
        if self.api:  # the raw bytes: no base64 inflation
            return self.post(data, mimetypes.guess_type(path.name)[0] or "image/jpeg")
        return self.invoke({"image": base64.b64encode(data).decode()})

    def invoke(self, event: dict) -> dict:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            which = {"Qualifier": self.qualifier} if self.qualifier else {}
            response = self.lambda_client.invoke(  # type: ignore[union-attr]
                FunctionName=self.function or "function", Payload=json.dumps(event).encode(), **which
            )
            body = json.loads(read_bounded(response["Payload"], time.monotonic() + self.timeout))
        except TooLarge as err:
            return error_body(502, "bad_answer", str(err))
        except ClientError as err:
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status in RETRIED_STATUSES or err.response.get("Error", {}).get("Code") == "TooManyRequestsException":
                raise Transient(f"Lambda answered {status}: {err}") from err
            return error_body(status or 500, "invoke_failed", str(err))
        except (BotoCoreError, OSError, ValueError) as err:  # connection, timeout, a cut-off answer
            raise Transient(f"{type(err).__name__}: {err}") from err
        if "FunctionError" in response:  # the function itself failed (Lambda's errorMessage shape)
            return error_body(500, "function_error", str(body.get("errorMessage", body)))
        return body

    def post(self, body: bytes, content_type: str) -> dict:
        """The answer to one POST, read within self.timeout whole (body included) and MAX_ANSWER_BYTES."""
        url, headers = self.api.rstrip("/") + "/predict", {"Content-Type": content_type}  # type: ignore[union-attr]
        if self.iam:
            headers = signed_headers(url, body, headers, self.region)
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        deadline = time.monotonic() + self.timeout
        try:
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(read_bounded(response, deadline))
            except urllib.error.HTTPError as err:  # an answer too: its body is read under the same bounds
                return self.error_answer(err, read_bounded(err, deadline))
        except TooLarge as err:
            return error_body(502, "bad_answer", str(err))
        except (OSError, ValueError, http.client.HTTPException) as err:  # timeouts, URLError; a body cut short
            raise Transient(f"{type(err).__name__}: {err}") from err

    @staticmethod
    def error_answer(err: urllib.error.HTTPError, text: bytes) -> dict:
        try:  # the function's JSON error body says what was wrong
            answer = json.loads(text)
        except ValueError:
            answer = None
        functions = isinstance(answer, dict) and isinstance(answer.get("error"), dict)
        # a 502 of the function's own (the photo's server failed) is its answer; the gateway's, or a server
        # over its capacity (server_busy), may pass on another try
        if err.code in RETRIED_STATUSES and (not functions or answer["error"].get("code") == "server_busy"):
            raise Transient(f"the API answered {err.code}", retry_after(err.headers.get("Retry-After")))
        if functions:
            return answer
        return error_body(err.code, f"http_{err.code}", text.decode(errors="replace")[:500])


def retry_after(value: str | None) -> float | None:
    """Retry-After in seconds, at most MAX_RETRY_AFTER (the HTTP-date form is not used by API Gateway)."""
    try:
        seconds = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return None if math.isnan(seconds) else min(max(0.0, seconds), MAX_RETRY_AFTER)


def signed_headers(url: str, body: bytes, headers: dict, region: str | None) -> dict:
    """SigV4 for an API whose route requires AWS_IAM authorization."""
    import boto3
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    session = boto3.Session(region_name=region)
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    SigV4Auth(session.get_credentials(), "execute-api", session.region_name).add_auth(request)
    return dict(request.headers)


def add_target_arguments(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--function", help="a deployed function's name or ARN")
    where.add_argument("--endpoint", help="the RIE's or local server's base URL, e.g. http://localhost:9000")
    where.add_argument("--api", help="the API Gateway endpoint URL (the stack's ApiUrl output)")
    p.add_argument("--iam", action="store_true", help="sign --api requests (the stack's RequireIam=true)")
    p.add_argument(
        "--qualifier",
        type=qualifier,
        help=f"the version or alias --function invokes (default: {LIVE_ALIAS}, the alias the API calls); e.g. 7",
    )
    p.add_argument("--region")
    p.add_argument(
        "--timeout", type=float, default=60, help="seconds a request may take, its whole answer included (default: 60)"
    )


def qualifier(text: str) -> str:
    if not QUALIFIER.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a version number, an alias name or $LATEST")
    return text


def check_target(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A qualifier for the API, which always calls the live alias, is refused."""
    if args.qualifier and args.api:
        p.error(f"--qualifier names a version of --function; --api calls the stack's {LIVE_ALIAS} alias")


def target_of(args: argparse.Namespace) -> Target:
    return Target(args.function, args.endpoint, args.api, args.iam, args.region, args.timeout, args.qualifier)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", nargs="+", help="image URLs or local image files")
    add_target_arguments(p)
    args = p.parse_args(argv)
    check_target(p, args)
    target = target_of(args)
    failed = False
    for source in args.sources:
        if not is_url(source) and not Path(source).is_file():
            print(json.dumps({"source": source, "error": "neither an http(s) URL nor a readable file"}))
            failed = True
            continue
        try:
            result = target.urls([source]) if is_url(source) else target.file(Path(source))
        except Transient as err:
            result = error_body(503, "unavailable", str(err))
        except Refused as err:
            result = err.answer
        print(json.dumps({"source": source, **result}, indent=2))
        failed = failed or "error" in result
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Classify image URLs or local files through the function, wherever it runs.

    python -m lambda_fn.client --function fashion-classifier https://example.com/shirt.jpg
    python -m lambda_fn.client --endpoint http://localhost:9000 photo.jpg       # RIE or local server
    python -m lambda_fn.client --api https://abc.execute-api.eu-west-1.amazonaws.com photo.jpg [--iam]

--function and --endpoint invoke with boto3 (a URL as {"url": ...}, a file
as {"image": base64}); --api POSTs to <api>/predict (a URL as JSON, a file
as its raw bytes), signed with your AWS credentials when the API requires
IAM authorization (--iam). For a whole catalog, with concurrency, retries
and resume: python -m lambda_fn.tag.
"""

import argparse
import base64
import json
import mimetypes
import sys
import urllib.error
import urllib.request
from pathlib import Path

RETRIED_STATUSES = {429, 502, 503, 504}  # throttled, or the gateway's own trouble: the same request may pass later


class Transient(Exception):
    """A failure that another try may not meet: throttling, a gateway error, a broken connection."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def error(status: int, code: str, message: str) -> dict:
    return {"error": {"status": status, "code": code, "message": message}}


class Target:
    """Where the function runs: a deployed function or a local endpoint (RIE, local server) invoked with boto3,
    or the API Gateway endpoint. Each call returns the function's answer (a prediction, a list of them, or an
    error body) or raises Transient."""

    def __init__(self, function=None, endpoint=None, api=None, iam=False, region=None, timeout: float = 60):
        self.function, self.endpoint, self.api, self.iam, self.region = function, endpoint, api, iam, region
        self.timeout = timeout
        self.lambda_client = None if api else self.boto3_client()

    def boto3_client(self):
        import boto3
        from botocore.config import Config

        # one attempt per call: retrying (with backoff, honouring throttles) is the caller's
        config = Config(retries={"total_max_attempts": 1}, read_timeout=self.timeout, max_pool_connections=64)
        if self.endpoint:  # the RIE and the local server accept any credentials
            return boto3.client(
                "lambda",
                endpoint_url=self.endpoint,
                region_name=self.region or "us-east-1",
                aws_access_key_id="local",
                aws_secret_access_key="local",
                config=config,
            )
        return boto3.client("lambda", region_name=self.region, config=config)

    def urls(self, urls: list[str]) -> dict:
        payload = {"url": urls[0]} if len(urls) == 1 else {"urls": urls}
        if self.api:
            return self.post(json.dumps(payload).encode(), "application/json")
        return self.invoke(payload)

    def file(self, path: Path) -> dict:
        data = path.read_bytes()
        if self.api:  # the raw bytes: no base64 inflation
            return self.post(data, mimetypes.guess_type(path.name)[0] or "image/jpeg")
        return self.invoke({"image": base64.b64encode(data).decode()})

    def invoke(self, event: dict) -> dict:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.lambda_client.invoke(  # type: ignore[union-attr]
                FunctionName=self.function or "function", Payload=json.dumps(event).encode()
            )
            body = json.loads(response["Payload"].read())
        except ClientError as err:
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status in RETRIED_STATUSES or err.response.get("Error", {}).get("Code") == "TooManyRequestsException":
                raise Transient(f"Lambda answered {status}: {err}") from err
            return error(status or 500, "invoke_failed", str(err))
        except (BotoCoreError, OSError, ValueError) as err:  # connection, timeout, a cut-off answer
            raise Transient(f"{type(err).__name__}: {err}") from err
        if "FunctionError" in response:  # the function itself failed (Lambda's errorMessage shape)
            return error(500, "function_error", str(body.get("errorMessage", body)))
        return body

    def post(self, body: bytes, content_type: str) -> dict:
        url, headers = self.api.rstrip("/") + "/predict", {"Content-Type": content_type}  # type: ignore[union-attr]
        if self.iam:
            headers = signed_headers(url, body, headers, self.region)
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            text = err.read()
            try:  # the function's JSON error body says what was wrong
                answer = json.loads(text)
            except ValueError:
                answer = None
            functions = isinstance(answer, dict) and isinstance(answer.get("error"), dict)
            # a 502 of the function's own (the photo's server failed) is its answer; the gateway's, or a server
            # over its capacity (server_busy), may pass on another try
            if err.code in RETRIED_STATUSES and (not functions or answer["error"].get("code") == "server_busy"):
                raise Transient(f"the API answered {err.code}", retry_after(err.headers.get("Retry-After"))) from err
            if functions:
                return answer
            return error(err.code, f"http_{err.code}", text.decode(errors="replace")[:500])
        except (OSError, ValueError) as err:  # URLError and timeouts are OSErrors
            raise Transient(f"{type(err).__name__}: {err}") from err


def retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is not used by API Gateway)."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


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
    p.add_argument("--region")


def target_of(args: argparse.Namespace) -> Target:
    return Target(args.function, args.endpoint, args.api, args.iam, args.region)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", nargs="+", help="image URLs or local image files")
    add_target_arguments(p)
    args = p.parse_args(argv)
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
            result = error(503, "unavailable", str(err))
        print(json.dumps({"source": source, **result}, indent=2))
        failed = failed or "error" in result
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

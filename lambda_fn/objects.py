"""Photos read from S3, with the guarantees of a URL's fetch (lambda_fn/fetch.py), and their tags written back.

Only the deployment's own bucket (CATALOG_BUCKET) is read, whatever bucket an event names: an event is
data, and a Batch Operations manifest or a forged invocation could name any bucket the role might reach.
The object's size is checked by its Content-Length before a byte of it is read, and the read stops at the
cap whatever S3 sends; the fetch's watchdog closes the connection at the request's deadline, so a slow body
cannot outlast it. boto3 does not retry: both callers retry on their own (Batch Operations a task that
answers TemporaryFailure, Lambda an S3 notification whose invocation fails), and a retry inside would spend
the function's time.

S3's failures become the request errors of lambda_fn/errors.py: a missing object or a refused read is
the caller's (permanent), throttling, S3's 5xx and an unreachable S3 are s3_unavailable (temporary).
The function reads and tags objects and never writes one, so nothing it does fires an ObjectCreated event.
"""

import functools
import math
from dataclasses import dataclass

from lambda_fn.errors import RequestError, echo
from lambda_fn.fetch import FetchLimits, Watchdog, read_capped

MAX_KEY_BYTES = 1024  # S3's own limit on a key (UTF-8)
# S3's answers that mean "later": throttling and its own failures (any 5xx is too)
BUSY_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "ServiceUnavailable", "InternalError"}
MISSING_CODES = {"NoSuchKey", "NoSuchBucket", "NoSuchVersion", "404"}


@dataclass(frozen=True)
class ObjectRef:
    """One object, as an event names it (its key decoded)."""

    bucket: str
    key: str
    version_id: str | None = None

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}" + (f"?versionId={self.version_id}" if self.version_id else "")

    def params(self) -> dict:
        """The object's Bucket, Key and VersionId, as S3's calls take them."""
        return {"Bucket": self.bucket, "Key": self.key} | ({"VersionId": self.version_id} if self.version_id else {})


@functools.lru_cache(maxsize=2)
def client(connect_timeout: float, read_timeout: int):
    """One S3 client per instance, made on first use (boto3 costs its import only to those who read S3); the
    read timeout in whole seconds, so that a request's time cut short near its deadline rarely makes another.
    Its endpoint, region and credentials are boto3's own: the Lambda's role, or AWS_ENDPOINT_URL_S3 and keys,
    read when it is made, by a session of its own (boto3's default session keeps the first credentials any
    caller in the process resolved: another library's, or a test's)."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"total_max_attempts": 1},  # the callers retry (see above)
    )
    return boto3.session.Session().client("s3", config=config)


def allowed(ref: ObjectRef, bucket: str) -> None:
    if not bucket:
        raise RequestError(
            "bucket_not_allowed", f"{echo(str(ref))}: this deployment reads no bucket (its CATALOG_BUCKET is empty)"
        )
    if ref.bucket != bucket:
        raise RequestError(
            "bucket_not_allowed", f"{echo(str(ref))}: only objects of the bucket {echo(bucket)} are read here"
        )


def s3_failure(err: Exception, ref: ObjectRef, watchdog: Watchdog) -> RequestError:
    """What S3 (or the way to it) answered, as a request error: permanent, or temporary (errors.TEMPORARY)."""
    from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError

    if isinstance(err, ClientError):
        code = str(err.response.get("Error", {}).get("Code", ""))
        status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in MISSING_CODES or status == 404:
            return RequestError("object_not_found", f"{echo(str(ref))} does not exist")
        if code == "AccessDenied" or status == 403:
            return RequestError(
                "object_access_denied",
                f"S3 refused to let the function read {echo(str(ref))} ({echo(code)}); S3 answers so for a "
                "missing object too when the function may not list the bucket (its role may not, by design)",
            )
        if code in BUSY_CODES or status >= 500:
            return RequestError("s3_unavailable", f"S3 answered {status} {echo(code)} for {echo(str(ref))}; try later")
        return RequestError("upstream_error", f"S3 answered {status} {echo(code)} for {echo(str(ref))}")
    if watchdog.expired or isinstance(err, ConnectTimeoutError | ReadTimeoutError | TimeoutError):
        return RequestError(
            "upstream_timeout", f"S3 did not answer for {echo(str(ref))} within {watchdog.elapsed:.1f} s"
        )
    return RequestError("s3_unavailable", f"S3 could not be reached for {echo(str(ref))}: {echo(err)}")


def body_socket(body):
    """The socket under a GetObject's body (botocore's StreamingBody over urllib3 over http.client), for the
    watchdog: the connection's, or (once http.client has let the connection go, as for a response that ends
    the connection) the response's own. None if neither is there: the loop's own deadline check still holds."""
    raw = getattr(body, "_raw_stream", None)
    sock = getattr(getattr(raw, "_connection", None), "sock", None)
    if sock is None:
        fp = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
    return sock


def read(ref: ObjectRef, limits: FetchLimits, bucket: str) -> bytes:
    """The object's bytes, within limits (max_bytes; total_timeout: what is left of the request's time)."""
    allowed(ref, bucket)
    s3 = client(limits.connect_timeout, math.ceil(limits.total_timeout))
    from botocore.exceptions import BotoCoreError, ClientError

    with Watchdog(limits.total_timeout) as watchdog:
        try:
            response = s3.get_object(**ref.params())
            body = response["Body"]
            watchdog.sock = body_socket(body)
            try:
                size = int(response.get("ContentLength") or 0)
                data = read_capped(body.read, size, limits.max_bytes, echo(str(ref)), watchdog)
                if len(data) < size:
                    raise RequestError("s3_unavailable", f"S3 ended {echo(str(ref))} after {len(data)} of {size} bytes")
            finally:
                body.close()
            if watchdog.expired:  # the watchdog cut it short: an end of stream, not the end of the body
                raise TimeoutError()
            return data
        except (ClientError, BotoCoreError, OSError, ValueError) as err:
            raise s3_failure(err, ref, watchdog) from None


def tag(ref: ObjectRef, tags: dict[str, str], limits: FetchLimits, bucket: str) -> None:
    """Set these tags on the object, keeping its other tags (S3 replaces the whole set on each put)."""
    allowed(ref, bucket)
    s3 = client(limits.connect_timeout, math.ceil(limits.total_timeout))
    from botocore.exceptions import BotoCoreError, ClientError

    with Watchdog(limits.total_timeout) as watchdog:
        try:
            kept = [t for t in s3.get_object_tagging(**ref.params())["TagSet"] if t["Key"] not in tags]
            tag_set = kept + [{"Key": k, "Value": v} for k, v in tags.items()]
            s3.put_object_tagging(**ref.params(), Tagging={"TagSet": tag_set})
        except (ClientError, BotoCoreError, OSError) as err:
            raise s3_failure(err, ref, watchdog) from None


# The tags an answer becomes on its object: S3's lifecycle rules, inventory reports and Batch Operations'
# manifests can select objects by them (needs-review=true: the review queue).
PHOTO_FAULTS = frozenset({"payload_too_large", "image_too_large", "not_an_image"})  # the photo's own, for good


def prediction_tags(prediction: dict) -> dict[str, str]:
    return {
        "category": prediction["label"],
        "probability": f"{prediction['probability']:.3f}",
        "needs-review": "false" if prediction["confident"] else "true",
    }


def fault_tags(code: str) -> dict[str, str]:
    """A photo that can never be classified (PHOTO_FAULTS): why, and that a person should look."""
    return {"category": "unclassified", "classify-error": code, "needs-review": "true"}

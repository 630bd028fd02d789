"""User errors and their HTTP statuses, in one place.

Anything raised as RequestError is the caller's problem (or the remote
server's) and becomes a 4xx/5xx JSON error; anything else is a bug and
becomes a 500 with the request id, logged with its traceback.
"""

import re

STATUS = {
    "invalid_json": 400,  # the body is not JSON
    "invalid_request": 400,  # a field is missing, unknown or of the wrong type; text that is not valid Unicode
    "invalid_url": 400,  # not a URL, or its host does not resolve
    "unsupported_url_scheme": 400,  # not http or https
    "url_not_allowed": 403,  # resolves to a private, loopback, link-local ... address
    "bucket_not_allowed": 403,  # an S3 object outside the deployment's CATALOG_BUCKET
    "object_access_denied": 403,  # S3 refused the function's read (its role, or the bucket's policy)
    "cross_site_refused": 403,  # the local server: a request a web page made, or for another Host
    "not_found": 404,  # no such route
    "object_not_found": 404,  # no such S3 object (or version)
    "method_not_allowed": 405,
    "payload_too_large": 413,  # request body or download over the byte limit
    "image_too_large": 413,  # over the pixel limit (decompression bombs)
    "unsupported_media_type": 415,  # a raw body whose Content-Type is not an accepted image type
    "not_an_image": 422,  # bytes that are not a readable image of an accepted format
    "too_many_redirects": 502,
    "server_busy": 503,  # the local server: over its connections or held bytes
    "upstream_error": 502,  # the image's server failed or answered with an error
    "upstream_timeout": 504,  # the image's server (or S3) was too slow
    "s3_unavailable": 503,  # S3 throttled, failed (5xx) or could not be reached
    "out_of_time": 504,  # a urls entry not finished before the function's own time ran out
    "not_written": 500,  # the review page (catalog/review.py): a decision could not be written to its file
}

# The errors that may pass if the same request is sent again later: S3 Batch Operations retries a task that
# answers one (TemporaryFailure), and an S3 notification's invocation fails with one so that Lambda retries it.
TEMPORARY = frozenset({"upstream_timeout", "s3_unavailable", "out_of_time", "server_busy"})

ECHO_CHARS = 200  # the most of any caller's or upstream server's string an error message repeats


def echo(text) -> str:
    """A caller's (or an upstream server's) string, quoted and cut, for a message that names it.
    repr() escapes what is not printable, lone surrogates included, so the message is always valid text."""
    text = str(text)
    return repr(text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + "...")


def echo_all(texts: list, most: int = 3) -> str:
    """The first few of many strings, echoed; the rest counted, so no list of names makes a large message."""
    shown = ", ".join(echo(text) for text in texts[:most])
    return shown + (f" and {len(texts) - most} more" if len(texts) > most else "")


LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def has_lone_surrogate(text: str) -> bool:
    """JSON's \\ud800 escapes decode to code points that UTF-8 cannot encode: no URL or header can carry them."""
    return LONE_SURROGATE.search(text) is not None


class RequestError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message, self.status = code, message, STATUS[code]

    def body(self) -> dict:
        return error_body(self.status, self.code, self.message)


def error_body(status: int, code: str, message: str) -> dict:
    return {"error": {"status": status, "code": code, "message": message}}

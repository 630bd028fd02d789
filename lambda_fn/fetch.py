"""Download an image from a user's URL without becoming a server-side request forgery tool.

A URL fetcher in a cloud function is a classic SSRF target: the instance
metadata endpoint (169.254.169.254), services on the private network,
localhost. So: http and https only; the host is resolved here and every
address it resolves to must be allowed by the address policy
(lambda_fn/addresses.py); the connection goes to exactly the address that
was checked (a second DNS answer cannot swap in a private one); each
redirect is checked the same way; every byte the server sends after its
headers is counted; and one deadline covers the whole fetch, name
resolution included, enforced by a watchdog that closes the connection, so
nothing the server (or its DNS) does -- dripping its status line, endless
100 Continue, endless trailers, a slow resolver -- can extend it.
"""

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit

from lambda_fn.addresses import classify
from lambda_fn.errors import RequestError, echo, has_lone_surrogate

CHUNK = 64 * 1024
FRAMING_BYTES = 64 * 1024  # what chunked encoding and trailers may add to the body's own bytes
USER_AGENT = "fashion-classifier/0.1 (+image fetcher)"
# What browsers leave as it is in a path or query; everything else (non-ASCII) is percent-encoded as UTF-8.
URL_SAFE = "/?#[]@!$&'()*+,;=:%-._~"


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 10 * 1024 * 1024
    connect_timeout: float = 3.0
    total_timeout: float = 10.0  # the whole fetch: connect, headers, body, however the server behaves
    max_redirects: int = 3
    allow_private: bool = False  # opt-in for local development and tests only ...
    private_opt_in: str = "ALLOW_PRIVATE_URLS=true"  # ... as the caller's user gives it: a refusal names it


class ResolveTimeout(TimeoutError):
    """Name resolution outlasted what was left of the fetch's deadline."""


def resolve(host: str, port: int, seconds: float) -> list:
    """getaddrinfo, given up after seconds: the system resolver has no deadline of its own, so it runs in a
    thread that is left to finish (or fail) on its own when it is too slow."""
    answer: dict = {}
    done = threading.Event()

    def lookup():
        try:
            answer["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError, ValueError) as err:
            answer["error"] = err
        finally:
            done.set()

    threading.Thread(target=lookup, daemon=True).start()
    if not done.wait(max(seconds, 0)):
        raise ResolveTimeout()
    if "error" in answer:
        raise RequestError("invalid_url", f"the host {echo(host)} could not be resolved") from None
    return answer["infos"]


def checked_address(host: str, port: int, limits: FetchLimits, seconds: float) -> str:
    """Resolve host; refuse it if any of its addresses is not allowed."""
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in resolve(host, port, seconds)]
    for address in addresses:
        verdict = classify(address)
        if not verdict.allows(limits.allow_private):
            opt_in = f" ({limits.private_opt_in} allows private ones)" if verdict.kind == "private" else ""
            raise RequestError(
                "url_not_allowed",
                f"the host {echo(host)} resolves to {address}, {verdict.why}; only public addresses are fetched"
                + opt_in,
            )
    return str(addresses[0])


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # the request target: path and query, percent-encoded


def parse_url(url: str) -> Target:
    """Check a URL the way a browser would read it, or say what is wrong with it (400)."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise RequestError("invalid_url", f"{echo(url)} contains spaces or control characters; encode them (%20)")
    if has_lone_surrogate(url):
        raise RequestError("invalid_url", f"{echo(url)} contains a lone surrogate, which no URL can carry")
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as err:
        raise RequestError("invalid_url", f"{echo(url)} is not a valid URL ({err})") from None
    if parts.scheme not in ("http", "https"):
        raise RequestError(
            "unsupported_url_scheme", f"URL scheme {echo(parts.scheme or '(none)')} is not supported; use http or https"
        )
    if not host:
        raise RequestError("invalid_url", f"{echo(url)} has no host")
    if port == 0:
        raise RequestError("invalid_url", f"{echo(url)} has port 0; give a port from 1 to 65535")
    path = quote(parts.path or "/", safe=URL_SAFE) + (f"?{quote(parts.query, safe=URL_SAFE)}" if parts.query else "")
    return Target(parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path)


class FinalResponse(http.client.HTTPResponse):
    """Skips every interim (1xx) answer before the final one, as RFC 9110 asks of a client: http.client skips
    100 Continue alone, and a 102 Processing or 103 Early Hints would be taken for the answer (a 502). Each is
    read with http.client's own header reader (its limits: 100 lines of 64 KB); the watchdog bounds how many."""

    def _read_status(self):
        while True:
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not 100 < status < 200:  # 100 Continue: http.client's own loop skips it
                return version, status, reason
            http.client._read_headers(self.fp)  # type: ignore[attr-defined]  # the interim answer's fields


class PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address that was checked, whatever DNS says next."""

    response_class = FinalResponse

    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self):
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """The same, with TLS verified against the URL's host name (SNI and certificate)."""

    response_class = FinalResponse

    def __init__(self, host, port, address, timeout):
        self.tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self.tls)
        self.address = address

    def connect(self):
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)


class CountedStream:
    """The response's byte stream, counting every byte after the headers: body, chunk framing, trailers."""

    def __init__(self, stream, limit: int):
        self.stream, self.limit, self.count = stream, limit, 0

    def counted(self, data):
        self.count += len(data)
        if self.count > self.limit:
            raise RequestError("payload_too_large", f"the image server sent over {self.limit} bytes, the most accepted")
        return data

    def read(self, *args):
        return self.counted(self.stream.read(*args))

    def read1(self, *args):
        return self.counted(self.stream.read1(*args))

    def readline(self, *args):
        return self.counted(self.stream.readline(*args))

    def readinto(self, buffer):
        n = self.stream.readinto(buffer)
        self.counted(memoryview(buffer)[: n or 0])
        return n

    def __getattr__(self, name):  # close, flush, peek ... as the stream's own
        return getattr(self.stream, name)


class Watchdog:
    """Closes the connection in hand when the fetch's deadline passes, so no read can outlast it."""

    def __init__(self, seconds: float):
        # the socket itself: http.client drops its own reference once a response reads to the close
        self.started = time.monotonic()
        self.deadline = self.started + seconds
        self.sock: socket.socket | None = None
        self.timer = threading.Timer(seconds, self.expire)
        self.timer.daemon = True

    def expire(self):
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)  # any blocked read returns at once
            except OSError:
                pass

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    @property
    def left(self) -> float:
        return self.deadline - time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def __enter__(self):
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.cancel()


def open_url(target: Target, limits: FetchLimits, watchdog: Watchdog):
    """Send the GET to the checked address; returns the response with its bytes counted."""
    watchdog.sock = None  # a new hop: until it connects, a timeout is a connect timeout
    address = checked_address(target.host, target.port, limits, watchdog.left)
    connection_class = PinnedHTTPSConnection if target.scheme == "https" else PinnedHTTPConnection
    left = watchdog.left
    if left <= 0:
        raise TimeoutError()
    connection = connection_class(target.host, target.port, address, timeout=min(limits.connect_timeout, left))
    connection.connect()
    watchdog.sock = connection.sock
    connection.sock.settimeout(max(watchdog.deadline - time.monotonic(), 0.001))
    connection.request("GET", target.path, headers={"User-Agent": USER_AGENT, "Accept": "image/*"})
    response = connection.getresponse()
    # http.client reads the body through fp, so counting there sees every byte (typed as a BufferedReader)
    response.fp = CountedStream(response.fp, limits.max_bytes + FRAMING_BYTES)  # type: ignore[assignment]
    return response


def read_capped(read, declared: int | None, max_bytes: int, what: str, watchdog: Watchdog | None = None) -> bytes:
    """A body read with read(n): refused by its declared size before a byte is read, cut off as soon as it
    passes max_bytes, and (with a watchdog) given up past its deadline between reads. `what` names it."""
    if declared is not None and declared > max_bytes:
        raise RequestError("payload_too_large", f"{what} is {declared} bytes; at most {max_bytes} are accepted")
    data = bytearray()
    while chunk := read(CHUNK):
        data += chunk
        if len(data) > max_bytes:
            raise RequestError("payload_too_large", f"{what} passed {max_bytes} bytes, the most accepted")
        if watchdog is not None and watchdog.expired:
            raise TimeoutError()
    return bytes(data)


def read_limited(response, limits: FetchLimits) -> bytes:
    """Stream the body, stopping as soon as it passes the limit (Content-Length or not)."""
    header = response.getheader("Content-Length", "")
    declared = int(header) if header.isascii() and header.isdigit() else None
    data = read_capped(response.read1, declared, limits.max_bytes, "the image")
    if declared is not None and len(data) < declared:
        raise RequestError(
            "upstream_error", f"the image server closed the connection after {len(data)} of the {declared} bytes"
        )
    return data


def redirect_target(url: str, location: str) -> str:
    """http.client reads headers as Latin-1; a server that sends a raw UTF-8 Location meant UTF-8."""
    try:
        location = location.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass  # Latin-1 it was (or already text): as it is
    try:
        return urljoin(url, location)
    except ValueError:
        raise RequestError(
            "upstream_error", f"the image server redirected to an invalid URL {echo(location)}"
        ) from None


def fetch(url: str, limits: FetchLimits) -> bytes:
    """GET url (following a few checked redirects) and return the body."""
    target = parse_url(url)
    with Watchdog(limits.total_timeout) as watchdog:
        try:
            for _ in range(limits.max_redirects + 1):
                response = open_url(target, limits, watchdog)
                try:
                    location = response.getheader("Location")
                    if response.status in (301, 302, 303, 307, 308) and location:
                        url = redirect_target(url, location)
                        try:
                            target = parse_url(url)
                        except RequestError as err:
                            raise RequestError(
                                "upstream_error",
                                f"the image server redirected to a URL that cannot be fetched: {err.message}",
                            ) from None
                        continue
                    if response.status != 200:
                        raise RequestError(
                            "upstream_error", f"the image server answered {response.status} {echo(response.reason)}"
                        )
                    body = read_limited(response, limits)
                    if watchdog.expired:  # the watchdog cut it short: an end of stream, not the end of the body
                        raise TimeoutError()
                    return body
                finally:
                    response.close()
        except (OSError, http.client.HTTPException, ValueError) as err:  # what a server can make http.client raise
            if watchdog.expired or isinstance(err, TimeoutError):
                raise timed_out(err, target, limits, watchdog) from None
            raise RequestError("upstream_error", f"could not download the image: {echo(err)}") from None
    raise RequestError("too_many_redirects", f"more than {limits.max_redirects} redirects")


def timed_out(err: Exception, target: Target, limits: FetchLimits, watchdog: Watchdog) -> RequestError:
    """Which step ran out of time, against which limit, and how long the fetch really took."""
    took = f"(gave up after {watchdog.elapsed:.1f} s)"
    if isinstance(err, ResolveTimeout):
        message = f"the host {echo(target.host)} did not resolve within the fetch's {limits.total_timeout:g} s {took}"
    elif watchdog.sock is None and not watchdog.expired:
        message = f"the image server did not connect within {limits.connect_timeout:g} s {took}"
    else:
        message = f"the image server did not answer within {limits.total_timeout:g} s {took}"
    return RequestError("upstream_timeout", message)

"""Download an image from a user's URL without becoming a server-side request forgery tool.

A URL fetcher in a cloud function is a classic SSRF target: the instance
metadata endpoint (169.254.169.254), services on the private network,
localhost. So: http and https only; the host is resolved here and every
address it resolves to must be public (an IPv4 address carried inside an
IPv6 one is checked as IPv4); the connection goes to exactly the address
that was checked (a second DNS answer cannot swap in a private one); each
redirect is checked the same way; every byte the server sends after its
headers is counted; and one deadline covers the whole fetch, enforced by a
watchdog that closes the connection, so nothing the server does (dripping
its status line, endless 100 Continue, endless trailers) can extend it.
"""

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit

from lambda_fn.errors import RequestError, echo

CHUNK = 64 * 1024
FRAMING_BYTES = 64 * 1024  # what chunked encoding and trailers may add to the body's own bytes
USER_AGENT = "fashion-classifier/0.1 (+image fetcher)"
# What browsers leave as it is in a path or query; everything else (non-ASCII) is percent-encoded as UTF-8.
URL_SAFE = "/?#[]@!$&'()*+,;=:%-._~"

# IPv6 ranges that carry an IPv4 address in their low 32 bits: checked as that IPv4 address.
# (Written here, not taken from ipaddress, whose tables differ between Python versions.)
EMBEDDING_IPV4 = [ipaddress.ip_network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48", "::/96")]
# Deprecated IPv6 ranges, refused outright: site-local (fec0::/10).
REFUSED_IPV6 = [ipaddress.ip_network("fec0::/10")]


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 10 * 1024 * 1024
    connect_timeout: float = 3.0
    total_timeout: float = 10.0  # the whole fetch: connect, headers, body, however the server behaves
    max_redirects: int = 3
    allow_private: bool = False  # opt-in for local development and tests only


def as_ipv4(address: ipaddress.IPv4Address | ipaddress.IPv6Address):
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo client, NAT64, compatible), else itself."""
    if address.version == 4:
        return address
    embedded = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
    if embedded is None and any(address in net for net in EMBEDDING_IPV4) and int(address) & 0xFFFFFFFF:
        embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return embedded or address


def allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_private: bool) -> bool:
    """Public unicast only; the private opt-in adds loopback and private ranges, never link-local
    (169.254.169.254 is the cloud's metadata service), multicast or unspecified ones."""
    if address.version == 6 and any(address in net for net in REFUSED_IPV6):
        return False
    address = as_ipv4(address)
    if address.is_link_local or address.is_multicast or address.is_unspecified:
        return False
    return address.is_global or (allow_private and (address.is_private or address.is_loopback))


def checked_address(host: str, port: int, allow_private: bool) -> str:
    """Resolve host; refuse it if any of its addresses is not allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise RequestError("invalid_url", f"the host {echo(host)} could not be resolved") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in addresses:
        if not allowed(address, allow_private):
            raise RequestError(
                "url_not_allowed",
                f"the host {echo(host)} resolves to {address}, a private, "
                "loopback, link-local or reserved address; only public "
                "addresses are fetched",
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


class PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address that was checked, whatever DNS says next."""

    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self):
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """The same, with TLS verified against the URL's host name (SNI and certificate)."""

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
        self.deadline = time.monotonic() + seconds
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

    def __enter__(self):
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.cancel()


def open_url(target: Target, limits: FetchLimits, watchdog: Watchdog):
    """Send the GET to the checked address; returns the response with its bytes counted."""
    address = checked_address(target.host, target.port, limits.allow_private)
    connection_class = PinnedHTTPSConnection if target.scheme == "https" else PinnedHTTPConnection
    left = watchdog.deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError()
    watchdog.sock = None  # a new hop: until it connects, a timeout is a connect timeout
    connection = connection_class(target.host, target.port, address, timeout=min(limits.connect_timeout, left))
    connection.connect()
    watchdog.sock = connection.sock
    connection.sock.settimeout(max(watchdog.deadline - time.monotonic(), 0.001))
    connection.request("GET", target.path, headers={"User-Agent": USER_AGENT, "Accept": "image/*"})
    response = connection.getresponse()
    # http.client reads the body through fp, so counting there sees every byte (typed as a BufferedReader)
    response.fp = CountedStream(response.fp, limits.max_bytes + FRAMING_BYTES)  # type: ignore[assignment]
    return response


def read_limited(response, limits: FetchLimits) -> bytes:
    """Stream the body, stopping as soon as it passes the limit (Content-Length or not)."""
    declared = response.getheader("Content-Length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limits.max_bytes:
        raise RequestError(
            "payload_too_large", f"the image is {declared} bytes; at most {limits.max_bytes} are accepted"
        )
    data = bytearray()
    while chunk := response.read1(CHUNK):
        data += chunk
        if len(data) > limits.max_bytes:
            raise RequestError("payload_too_large", f"the download passed {limits.max_bytes} bytes, the most accepted")
    return bytes(data)


def redirect_target(url: str, location: str) -> str:
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
                stage = "connect" if watchdog.sock is None else "answer"
                limit = limits.connect_timeout if stage == "connect" and not watchdog.expired else limits.total_timeout
                raise RequestError("upstream_timeout", f"the image server did not {stage} within {limit:g} s") from None
            raise RequestError("upstream_error", f"could not download the image: {echo(err)}") from None
    raise RequestError("too_many_redirects", f"more than {limits.max_redirects} redirects")

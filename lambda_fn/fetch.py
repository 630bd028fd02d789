"""Download an image from a user's URL without becoming a server-side request forgery tool.

A URL fetcher in a cloud function is a classic SSRF target: the instance
metadata endpoint (169.254.169.254), services on the private network,
localhost. So: http and https only; the host is resolved here and every
address it resolves to must be public; the connection goes to exactly the
address that was checked (a second DNS answer cannot swap in a private one);
each redirect is checked the same way; every byte is counted while
streaming; and the whole download has a deadline, not just each read.
"""

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from lambda_fn.errors import RequestError

CHUNK = 64 * 1024
USER_AGENT = "fashion-classifier/0.1 (+image fetcher)"


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 10 * 1024 * 1024
    connect_timeout: float = 3.0
    total_timeout: float = 10.0     # the whole download, however slowly the server trickles
    max_redirects: int = 3
    allow_private: bool = False     # opt-in for local development and tests only


def allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_private: bool) -> bool:
    """Public unicast only; the private opt-in adds loopback and private ranges, never link-local
    (169.254.169.254 is the cloud's metadata service), multicast or unspecified ones."""
    if address.version == 6 and address.ipv4_mapped:  # ::ffff:10.0.0.1 is 10.0.0.1
        address = address.ipv4_mapped
    if address.is_link_local or address.is_multicast or address.is_unspecified:
        return False
    return address.is_global or (allow_private and (address.is_private or address.is_loopback))


def checked_address(host: str, port: int, allow_private: bool) -> str:
    """Resolve host; refuse it if any of its addresses is not allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise RequestError("invalid_url", f"the host {host!r} could not be resolved") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    for address in addresses:
        if not allowed(address, allow_private):
            raise RequestError("url_not_allowed", f"the host {host!r} resolves to {address}, a private, "
                                                  "loopback, link-local or reserved address; only public "
                                                  "addresses are fetched")
    return str(addresses[0])


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
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self):
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def open_url(url: str, limits: FetchLimits, deadline: float):
    """Send the GET to the checked address. Returns (response, socket)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise RequestError("unsupported_url_scheme",
                           f"URL scheme {parts.scheme or '(none)'!r} is not supported; use http or https")
    try:
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise RequestError("invalid_url", f"{url!r} has an invalid port") from None
    if not host:
        raise RequestError("invalid_url", f"{url!r} has no host")
    address = checked_address(host, port, limits.allow_private)
    connection_class = PinnedHTTPSConnection if parts.scheme == "https" else PinnedHTTPConnection
    connection = connection_class(host, port, address, timeout=limits.connect_timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection.request("GET", path, headers={"User-Agent": USER_AGENT, "Accept": "image/*"})
    sock = connection.sock
    sock.settimeout(remaining(deadline))
    return connection.getresponse(), sock


def remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError()
    return left


def read_limited(response, sock, limits: FetchLimits, deadline: float) -> bytes:
    """Stream the body, stopping as soon as it passes the limit (Content-Length or not)."""
    declared = response.getheader("Content-Length")
    if declared and declared.isdigit() and int(declared) > limits.max_bytes:
        raise RequestError("payload_too_large", f"the image is {declared} bytes; at most {limits.max_bytes} are accepted")
    data = bytearray()
    while chunk := response.read1(CHUNK):
        data += chunk
        if len(data) > limits.max_bytes:
            raise RequestError("payload_too_large", f"the download passed {limits.max_bytes} bytes, the most accepted")
        sock.settimeout(remaining(deadline))
    return bytes(data)


def fetch(url: str, limits: FetchLimits) -> bytes:
    """GET url (following a few checked redirects) and return the body."""
    deadline = time.monotonic() + limits.total_timeout
    try:
        for _ in range(limits.max_redirects + 1):
            response, sock = open_url(url, limits, deadline)
            try:
                if response.status in (301, 302, 303, 307, 308) and response.getheader("Location"):
                    url = urljoin(url, response.getheader("Location"))
                    continue
                if response.status != 200:
                    raise RequestError("upstream_error", f"the image server answered {response.status} {response.reason}")
                return read_limited(response, sock, limits, deadline)
            finally:
                response.close()
    except TimeoutError:  # socket.timeout too
        raise RequestError("upstream_timeout", f"the image server did not answer within {limits.total_timeout:g} s") from None
    except (OSError, http.client.HTTPException) as err:
        raise RequestError("upstream_error", f"could not download the image: {err}") from None
    raise RequestError("too_many_redirects", f"more than {limits.max_redirects} redirects")

"""The local server (no Docker) with the RIE's and API Gateway's routes, and the client against it."""

import http.client
import json
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from catalog import client
from harness import servers
from harness.servers import post


def test_rie_route_takes_the_event(local_server, image_server):
    status, body = post(
        f"{local_server}/2015-03-31/functions/function/invocations",
        json.dumps({"url": f"{image_server}/images/hat.jpg"}).encode(),
        "application/json",
    )
    assert status == 200 and len(body["probabilities"]) == 3


def test_api_route_takes_raw_images_and_json(local_server, image_files, image_server):
    status, raw = post(f"{local_server}/predict", image_files["hat.jpg"].read_bytes(), "image/jpeg")
    assert status == 200
    status, by_url = post(
        f"{local_server}/predict", json.dumps({"url": f"{image_server}/images/hat.jpg"}).encode(), "application/json"
    )
    assert status == 200 and by_url["probabilities"] == raw["probabilities"]
    assert post(f"{local_server}/predict", b"{oops", "application/json")[0] == 400
    assert post(f"{local_server}/nowhere", b"{}", "application/json")[0] == 404


def test_client_through_boto3_and_through_the_api(local_server, image_files, image_server, capsys):
    hat = str(image_files["hat.jpg"])
    assert client.main(["--endpoint", local_server, hat, f"{image_server}/images/hat.jpg"]) == 0
    first, second = capsys.readouterr().out.split("\n}\n")[:2]
    assert json.loads(first + "}")["probabilities"] == json.loads(second + "}")["probabilities"]
    assert client.main(["--api", local_server, hat]) == 0
    assert json.loads(capsys.readouterr().out)["source"] == hat
    assert client.main(["--api", local_server, f"{image_server}/images/text.jpg"]) == 1
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "not_an_image"


def raw_request(base: str, method: str, path: str, headers: dict, body: bytes = b"") -> tuple[int, Any]:
    import http.client
    from urllib.parse import urlsplit

    url = urlsplit(base)
    connection = http.client.HTTPConnection(url.netloc, timeout=10)
    connection.putrequest(method, path)
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.endheaders(body)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, (json.loads(data) if data else None)


@pytest.mark.parametrize("length, status", [("-1", 400), ("ten", 400), ("²", 400), (str(1 << 40), 413)])
def test_bad_content_length_is_a_json_error_without_reading(local_server, length, status):
    got, body = raw_request(local_server, "POST", "/predict", {"Content-Length": length, "Content-Type": "image/jpeg"})
    assert got == status and body["error"]["status"] == status


def test_deeply_nested_json_is_400_and_the_server_keeps_serving(local_server, image_server):
    deep = b"[" * 100_000 + b"]" * 100_000
    for path in ("/2015-03-31/functions/function/invocations", "/predict"):
        status, body = raw_request(
            local_server, "POST", path, {"Content-Type": "application/json", "Content-Length": str(len(deep))}, deep
        )
        assert (status, body["error"]["code"]) == (400, "invalid_json")
    assert (
        post(
            f"{local_server}/predict",
            json.dumps({"url": f"{image_server}/images/hat.jpg"}).encode(),
            "application/json",
        )[0]
        == 200
    )


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("PUT", "/predict", 405),
        ("DELETE", "/predict", 405),
        ("OPTIONS", "/predict", 405),
        ("PATCH", "/x", 404),
        ("GET", "/predict", 405),
    ],
)
def test_every_method_gets_json(local_server, method, path, status):
    got, body = raw_request(local_server, method, path, {"Content-Length": "0"})
    assert got == status and body["error"]["status"] == status


def test_head_gets_the_status_without_a_body(local_server):
    assert raw_request(local_server, "HEAD", "/predict", {}) == (405, None)


def test_64_parallel_clients_are_all_served(local_server, image_files):
    from concurrent.futures import ThreadPoolExecutor

    hat = image_files["hat.jpg"].read_bytes()
    with ThreadPoolExecutor(64) as pool:
        statuses = list(pool.map(lambda _: post(f"{local_server}/predict", hat, "image/jpeg")[0], range(64)))
    assert statuses == [200] * 64


def test_each_request_is_one_json_log_line_as_lambda_writes_it(local_server_process, image_files):
    url, lines = local_server_process.url, local_server_process.lines
    before = len(lines)
    status, body = post(f"{url}/predict", image_files["hat.jpg"].read_bytes(), "image/jpeg")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(line.startswith("{") for line in lines[before:]):
        time.sleep(0.05)
    (record,) = [json.loads(line) for line in lines[before:] if line.startswith("{")]
    assert record["message"] == "request" and record["level"] == "INFO" and record["logger"] == "fashion.metrics"
    assert record["status"] == status == 200 and record["label"] == body["label"] and record["input"] == "upload"
    assert record["requestId"] and record["inference_ms"] > 0  # fields at top level, not a string in the message


# -- the request as it arrives on the socket: framing, deadline, caps, origin -------------------------------


@pytest.fixture
def server(app, monkeypatch):
    """The local server in this process, on 127.0.0.1, with its limits made small enough to reach in a test."""
    from lambda_fn import local_server

    monkeypatch.setattr(local_server, "REQUEST_DEADLINE", 1.0)
    monkeypatch.setattr(local_server, "MAX_CONNECTIONS", 3)
    monkeypatch.setattr(local_server, "MAX_WAITING", 2)
    monkeypatch.setattr(local_server, "SLOT_WAIT", 0.2)
    monkeypatch.setattr(local_server, "MAX_HELD_BYTES", 1_000_000)
    httpd = local_server.Server(("127.0.0.1", 0), local_server.Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_port
    httpd.shutdown()
    httpd.server_close()


def exchange(port: int, request: bytes, pause: float = 0.0, timeout: float = 10) -> bytes:
    """Send raw bytes (a byte at a time, pause apart, when pause is set); everything the server sends until it
    closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            for piece in [request[k : k + 1] for k in range(len(request))] if pause else [request]:
                sock.sendall(piece)
                time.sleep(pause)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server closed first: what it said is still there to read
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def head(port: int, extra: str = "", body: bytes = b"") -> bytes:
    return (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: image/jpeg\r\n{extra}\r\n".encode() + body
    )


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


@pytest.mark.parametrize(
    "framing",
    [
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",  # CL.TE: two framings, two readings
        "Transfer-Encoding: chunked\r\n",
        "Content-Length: 5\r\nContent-Length: 0\r\n",
        "Content-Length: 5, 5\r\n",
    ],
    ids=["cl-te", "te", "two-lengths", "list"],
)
def test_ambiguous_framing_is_400_and_answered_once(server, framing):
    response = exchange(server, head(server, framing, b"0\r\n\r\nPOST /predict HTTP/1.1\r\n\r\n"))
    assert status_of(response) == 400 and response.count(b"HTTP/1.1 ") == 1


def test_a_truncated_body_is_refused_not_processed(server, image_files):
    hat = image_files["hat.jpg"].read_bytes()
    response = exchange(server, head(server, f"Content-Length: {len(hat)}\r\n", hat[:100]))
    assert status_of(response) == 400 and f"ended after 100 of its {len(hat)} bytes".encode() in response


def test_a_client_that_drips_is_cut_off_at_the_request_deadline(server):
    started = time.monotonic()
    response = exchange(server, head(server, "Content-Length: 40\r\n", b"x" * 40), pause=0.05, timeout=30)
    assert time.monotonic() - started < 4 and status_of(response or b"- 408") != 200


def test_connections_over_the_cap_get_503(server):
    idle = [socket.create_connection(("127.0.0.1", server)) for _ in range(3)]
    try:
        time.sleep(0.2)
        assert status_of(exchange(server, head(server, "Content-Length: 0\r\n"))) == 503
    finally:
        for sock in idle:
            sock.close()


def sequential_clients(port: int, photo: bytes, clients: int, requests: int) -> list:
    """What `clients` clients see, each posting `requests` photos one after another, each on a new connection
    closed before the next opens (so at most `clients` are open at once): statuses, or the exception met."""

    def one_client(_) -> list:
        seen: list = []
        for _ in range(requests):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                connection.request("POST", "/predict", body=photo, headers={"Content-Type": "image/jpeg"})
                response = connection.getresponse()
                response.read()
                seen.append(response.status)
            except OSError as err:  # a reset: the server closed on the request unread
                seen.append(type(err).__name__)
            connection.close()
        return seen

    with ThreadPoolExecutor(clients) as pool:
        return [status for client in pool.map(one_client, range(clients)) for status in client]


def test_clients_that_reconnect_for_each_request_are_never_refused(server, image_files):
    """As many clients as the cap (3 here): none is refused, however fast each reconnects."""
    assert sequential_clients(server, image_files["hat.jpg"].read_bytes(), 3, 30) == [200] * 90


@pytest.mark.usefixtures("app")  # importing the server module loads the model where it reads it at import
def test_64_sequential_clients_at_the_real_cap_are_never_refused(local_server, image_files):
    """The server in its own process, as `make serve` runs it, at its own cap (before: 43 of 512 refused or reset)."""
    from lambda_fn.local_server import MAX_CONNECTIONS

    port, photo = int(local_server.rsplit(":", 1)[1]), image_files["hat.jpg"].read_bytes()
    assert sequential_clients(port, photo, MAX_CONNECTIONS, 5) == [200] * 5 * MAX_CONNECTIONS


def test_a_client_over_the_cap_reads_a_503_not_a_broken_pipe(server):
    """Its request (a 4 MB photo: more than the socket buffers hold) is read and dropped, then answered."""
    idle = [socket.create_connection(("127.0.0.1", server)) for _ in range(3)]
    try:
        time.sleep(0.2)
        connection = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
        connection.request("POST", "/predict", body=b"x" * 4_000_000, headers={"Content-Type": "image/jpeg"})
        response = connection.getresponse()
        body = json.loads(response.read())
        connection.close()
    finally:
        for sock in idle:
            sock.close()
    assert response.status == 503 and body["error"]["code"] == "server_busy"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_connections_past_the_waiting_room_are_closed_unanswered(server):
    """The cap (3) served, the waiting room (2) full: the next is closed at once, no thread spent on it."""
    held = [socket.create_connection(("127.0.0.1", server)) for _ in range(5)]
    try:
        time.sleep(0.1)
        started = time.monotonic()
        assert exchange(server, head(server, "Content-Length: 0\r\n")) == b""
        assert time.monotonic() - started < 0.5
    finally:
        for sock in held:
            sock.close()


def test_bodies_over_the_held_bytes_cap_get_503_unread(server):
    response = exchange(server, head(server, "Content-Length: 2000000\r\n"))
    assert status_of(response) == 503 and b"server_busy" in response


@pytest.mark.parametrize("lines, size", [(98, 65_000), (2, 40_000)])
def test_a_header_over_its_cap_is_431_and_not_held(server, lines, size):
    """The review's 98 header lines of 65,000 bytes (6.4 MB a connection) and two of 40,000: over 64 KB a request."""
    fields = "".join(f"X-Pad-{k}: {'p' * size}\r\n" for k in range(lines))
    response = exchange(server, head(server, fields + "Content-Length: 0\r\n"))
    assert status_of(response) == 431 and b"header is over 65536 bytes" in response


def test_header_bytes_count_with_the_body_under_the_held_cap(server):
    """A 990,000-byte body fits the test server's 1,000,000 held bytes alone; with a 25 KB header it does not."""
    fields = "".join(f"X-Pad-{k}: {'p' * 1000}\r\n" for k in range(25))
    response = exchange(server, head(server, fields + "Content-Length: 990000\r\n"))
    assert status_of(response) == 503 and b"server_busy" in response


@pytest.mark.parametrize(
    "headers, allowed",
    [
        ({}, True),  # curl, boto3, the client: no Origin
        ({"Origin": "http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"}, True),  # the page itself
        ({"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, False),
        ({"Origin": "https://evil.example"}, False),
        ({"Sec-Fetch-Site": "same-site"}, False),
        ({"Host": "evil.example:{port}"}, False),  # DNS rebinding: a page's own name pointed at 127.0.0.1
    ],
)
@pytest.mark.parametrize("path", ["/2015-03-31/functions/function/invocations", "/predict"])
def test_a_web_page_cannot_drive_the_server(server, headers, allowed, path):
    headers = {"Host": f"127.0.0.1:{server}", "Content-Type": "text/plain", **headers}
    lines = "".join(f"{k}: {v.format(port=server)}\r\n" for k, v in headers.items())
    response = exchange(server, f"POST {path} HTTP/1.1\r\n{lines}Content-Length: 2\r\n\r\n{{}}".encode())
    assert (status_of(response) != 403) is allowed, response
    if not allowed:
        assert b"cross_site_refused" in response


def test_a_client_reset_is_one_json_record(server, caplog):
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(head(server, "Content-Length: 1000\r\n", b"x" * 10))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not caplog.records:
        time.sleep(0.05)
    (record,) = [r for r in caplog.records if r.name == "fashion.local_server"]
    assert record.getMessage() == "client connection ended" and not record.exc_info


def test_every_response_carries_the_security_headers(local_server):
    for method, path in (("GET", "/"), ("POST", "/predict"), ("GET", "/nowhere")):
        request = urllib.request.Request(local_server + path, data=b"{}" if method == "POST" else None)
        try:
            response = urllib.request.urlopen(request, timeout=30)
        except urllib.error.HTTPError as err:
            response = err
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
        assert response.headers["Referrer-Policy"] == "no-referrer", path
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], path
        assert "unsafe-inline" not in response.headers["Content-Security-Policy"], path


@pytest.mark.parametrize("min_confidence", ["0", "1"])
def test_min_confidence_overrides_the_models_threshold(tiny_bundle, image_files, min_confidence):
    """MIN_CONFIDENCE 0 accepts every answer, 1 none; an overridden threshold promises no precision."""
    with servers.local_server(tiny_bundle, settings={"MIN_CONFIDENCE": min_confidence}) as server:
        status, body = post(f"{server.url}/predict", image_files["hat.jpg"].read_bytes(), "image/jpeg")
    assert status == 200 and body["confident"] is (min_confidence == "0")
    assert body["model"]["min_confidence"] == float(min_confidence) and body["model"]["target_precision"] is None
    assert ("candidates" in body) is (min_confidence == "1")


def test_a_bad_min_confidence_stops_the_server_with_its_name(tiny_bundle):
    with pytest.raises(RuntimeError, match="MIN_CONFIDENCE='often' must be a probability between 0 and 1"):
        with servers.local_server(tiny_bundle, settings={"MIN_CONFIDENCE": "often"}):
            pass

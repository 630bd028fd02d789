"""The local server (no Docker) with the RIE's and API Gateway's routes, and the client against it."""

import json
import time
from typing import Any

import pytest

from lambda_fn import client
from tests.lambda_fn.conftest import post


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
    url, lines = local_server_process
    before = len(lines)
    status, body = post(f"{url}/predict", image_files["hat.jpg"].read_bytes(), "image/jpeg")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(line.startswith("{") for line in lines[before:]):
        time.sleep(0.05)
    (record,) = [json.loads(line) for line in lines[before:] if line.startswith("{")]
    assert record["message"] == "request" and record["level"] == "INFO" and record["logger"] == "fashion"
    assert record["status"] == status == 200 and record["label"] == body["label"] and record["input"] == "upload"
    assert record["requestId"] and record["inference_ms"] > 0  # fields at top level, not a string in the message

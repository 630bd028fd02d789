"""Safe URL fetching, against a real HTTP server on 127.0.0.1 (through the handler: statuses too)."""

import socket
import ssl
import subprocess

import pytest

from harness.handler import error_of, with_limits
from harness.servers import image_server
from lambda_fn import fetch as fetch_module
from lambda_fn.addresses import Verdict


@pytest.fixture
def no_connections(monkeypatch):
    """Refused URLs must be refused before any socket is opened."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"a connection was attempted: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)


def test_metadata_endpoint_is_refused_even_with_the_private_opt_in(app, no_connections):
    status, code, message = error_of(app, "http://169.254.169.254/latest/meta-data/")
    assert (status, code) == (403, "url_not_allowed") and "169.254.169.254" in message


def test_host_resolving_to_loopback_is_refused(app, monkeypatch, image_server, no_connections):
    with_limits(app, monkeypatch, allow_private=False)
    port = image_server.rsplit(":", 1)[1]
    status, code, message = error_of(app, f"http://localhost:{port}/images/hat.jpg")
    assert (status, code) == (403, "url_not_allowed") and "'localhost' resolves to" in message
    assert message.endswith("(ALLOW_PRIVATE_URLS=true allows private ones)")  # the function's own switch


@pytest.mark.parametrize(
    "address", ["10.0.0.1", "192.168.1.1", "[::1]", "[fe80::1]", "224.0.0.1", "0.0.0.0", "[::ffff:127.0.0.1]"]
)
def test_private_and_reserved_addresses_are_refused(app, monkeypatch, address, no_connections):
    with_limits(app, monkeypatch, allow_private=False)
    assert error_of(app, f"http://{address}/a.jpg")[:2] == (403, "url_not_allowed")


def test_redirect_to_a_private_address_is_refused(app, monkeypatch, image_server):
    """127.0.0.1 plays the public image host here; every other address is treated as private."""
    with_limits(app, monkeypatch, allow_private=False)
    public, private = Verdict("public", "public"), Verdict("private", "treated as private here")
    monkeypatch.setattr(fetch_module, "classify", lambda address: public if str(address) == "127.0.0.1" else private)
    ok = app.lambda_handler({"url": f"{image_server}/redirect?to=/images/hat.jpg"}, None)
    assert ok["label"]  # redirects to allowed places are followed
    status, code, message = error_of(app, f"{image_server}/redirect?to=http://127.0.0.2:9/secret")
    assert (status, code) == (403, "url_not_allowed") and "127.0.0.2" in message


def test_too_many_redirects(app, image_server):
    url = f"{image_server}/images/hat.jpg"
    for _ in range(4):
        url = f"{image_server}/redirect?to={url}"
    assert error_of(app, url)[:2] == (502, "too_many_redirects")


def test_stalled_server_times_out(app, monkeypatch, image_server):
    with_limits(app, monkeypatch, total_timeout=0.5)
    status, code, message = error_of(app, f"{image_server}/stall?seconds=3")
    assert (status, code) == (504, "upstream_timeout") and "0.5 s" in message


def test_dripping_server_hits_the_total_deadline(app, monkeypatch, image_server):
    with_limits(app, monkeypatch, total_timeout=0.5)
    assert error_of(app, f"{image_server}/drip")[:2] == (504, "upstream_timeout")


def test_endless_body_without_content_length_stops_at_the_limit(app, monkeypatch, image_server):
    with_limits(app, monkeypatch, max_bytes=256 * 1024)
    status, code, message = error_of(app, f"{image_server}/endless")
    assert (status, code) == (413, "payload_too_large") and "passed 262144 bytes" in message


def test_declared_length_over_the_limit_is_refused_before_reading(app, image_server):
    status, code, message = error_of(app, f"{image_server}/lying-length")
    assert (status, code) == (413, "payload_too_large") and str(1 << 40) in message


@pytest.mark.parametrize("path, code", [("/status/500", "upstream_error"), ("/images/missing.jpg", "upstream_error")])
def test_server_errors_are_502(app, image_server, path, code):
    status, got, message = error_of(app, image_server + path)
    assert (status, got) == (502, code) and "answered" in message


@pytest.mark.parametrize(
    "name, status, code",
    [
        ("text.jpg", 422, "not_an_image"),  # a text file served as image/jpeg
        ("truncated.jpg", 422, "not_an_image"),
        ("bomb.png", 413, "image_too_large"),
    ],
)
def test_bad_downloads(app, image_server, name, status, code):
    assert error_of(app, f"{image_server}/images/{name}")[:2] == (status, code)


@pytest.mark.parametrize("name", ["gray.png", "rgba.png", "cmyk.jpg", "palette.png", "gray16.png"])
def test_unusual_modes_are_classified(app, image_server, name):
    assert app.lambda_handler({"url": f"{image_server}/images/{name}"}, None)["label"] in app.MODEL.labels


@pytest.fixture(scope="module")
def https_server(image_files, tmp_path_factory):
    """The image server again, over TLS with a self-signed certificate for 127.0.0.1."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with image_server(next(iter(image_files.values())).parent, tls=context) as url:
        yield url, cert


def test_https_certificate_is_verified(app, https_server):
    url, _ = https_server
    status, code, message = error_of(app, f"{url}/images/hat.jpg")
    assert (status, code) == (502, "upstream_error") and "CERTIFICATE_VERIFY_FAILED" in message


def test_https_to_a_trusted_server_works_through_the_pinned_address(app, https_server, monkeypatch):
    import functools
    import ssl

    url, cert = https_server
    monkeypatch.setattr(
        fetch_module.ssl, "create_default_context", functools.partial(ssl.create_default_context, cafile=str(cert))
    )
    assert app.lambda_handler({"url": f"{url}/images/hat.jpg"}, None)["label"] in app.MODEL.labels

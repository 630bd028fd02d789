"""Calling lambda_fn.app's handler from a test: with its limits changed, or for the error it answers."""

import dataclasses


def with_limits(app, monkeypatch, **limits):
    """The app's fetch limits changed for one test."""
    fetch = dataclasses.replace(app.SETTINGS.fetch, **limits)
    monkeypatch.setattr(app, "SETTINGS", dataclasses.replace(app.SETTINGS, fetch=fetch))


def error_of(app, url) -> tuple[int, str, str]:
    """(status, code, message) of the error the handler answers a URL with."""
    body = app.lambda_handler({"url": url}, None)
    assert "error" in body, body
    return body["error"]["status"], body["error"]["code"], body["error"]["message"]

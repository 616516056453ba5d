"""Structured logs (core.logs): JSON lines with a request id, personal data masked."""

from __future__ import annotations

import io
import json
import logging
import threading
from typing import Any

import pytest

from tests import factories

log = logging.getLogger("nongdai.test")


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Every line written so far, each of which must be one JSON object."""
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def access_line(stream: io.StringIO) -> dict[str, Any]:
    (line,) = [e for e in lines(stream) if e["logger"] == "nongdai.access"]
    return line


def test_each_request_logs_one_json_line_with_its_id(client: Any, stream: io.StringIO) -> None:
    response = client.get("/healthz", headers={"X-Request-Id": "req-abc.123_XYZ"})

    assert response.headers["X-Request-Id"] == "req-abc.123_XYZ"
    line = access_line(stream)
    assert line["request_id"] == "req-abc.123_XYZ"
    assert line["level"] == "INFO"
    assert line["message"] == "request"
    assert (line["method"], line["path"], line["status"]) == ("GET", "/healthz", 200)
    assert line["ts"]


@pytest.mark.parametrize("incoming", [None, "short", "has space in it", "x" * 65, "ümlaut-id-1"])
def test_missing_or_malformed_request_id_is_replaced(client: Any, stream: io.StringIO,
                                                     incoming: str | None) -> None:
    headers = {} if incoming is None else {"X-Request-Id": incoming}

    response = client.get("/api/v1/no-such-thing", headers=headers)

    generated = response.headers["X-Request-Id"]
    assert generated != incoming
    assert len(generated) == 32
    int(generated, 16)
    assert response.get_json()["request_id"] == generated
    assert access_line(stream)["request_id"] == generated


def test_request_ids_differ_between_requests(client: Any) -> None:
    first = client.get("/healthz").headers["X-Request-Id"]
    second = client.get("/healthz").headers["X-Request-Id"]

    assert first != second


def test_outside_a_request_the_id_is_null(stream: io.StringIO) -> None:
    log.warning("scheduler tick")

    (line,) = lines(stream)
    assert line == {**line, "level": "WARNING", "logger": "nongdai.test",
                    "message": "scheduler tick", "request_id": None}


def test_id_numbers_in_messages_are_masked(stream: io.StringIO) -> None:
    number = factories.id_number()
    masked = f"{number[:4]}**********{number[-4:]}"

    log.info("farmer %s registered", number)
    log.info(f"lookup for {number}!")  # formatted in place: the mistake the filter catches

    assert number not in stream.getvalue()
    assert [e["message"] for e in lines(stream)] == [
        f"farmer {masked} registered", f"lookup for {masked}!"]


def test_longer_digit_runs_are_not_mistaken_for_id_numbers(stream: io.StringIO) -> None:
    log.info("village 330521100201 and account 62220219880517123456")

    assert lines(stream)[0]["message"] == ("village 330521100201 and account "
                                           "62220219880517123456")


def test_id_numbers_in_tracebacks_are_masked(stream: io.StringIO) -> None:
    number = factories.id_number()
    try:
        raise ValueError(f"no farmer {number}")
    except ValueError:
        log.exception("lookup failed")

    (line,) = lines(stream)
    assert "ValueError" in line["exc_info"]
    assert number not in stream.getvalue()


def test_secret_named_fields_are_redacted(stream: io.StringIO) -> None:
    log.info("signed in", extra={"password": "hunter2-hunter2", "otp_code": "481516",
                                 "access_token": "eyJhbGciOi", "client_secret": "s3cr3t",
                                 "id_number": factories.id_number(), "village": "新村"})

    (line,) = lines(stream)
    for field in ("password", "otp_code", "access_token", "client_secret", "id_number"):
        assert line[field] == "[redacted]"
    assert line["village"] == "新村"
    for secret in ("hunter2", "481516", "eyJhbGciOi", "s3cr3t"):
        assert secret not in stream.getvalue()


def test_a_500_is_logged_with_its_request_id(app: Any, client: Any, session: Any,
                                             stream: io.StringIO,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from core.places import services  # noqa: PLC0415

    number = factories.id_number()

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(f"farmer {number} exploded")

    monkeypatch.setattr(services, "create_county", broken)
    headers = factories.auth_headers(session, factories.staff(session))

    response = client.post("/api/v1/counties", json={"code": "330521", "name": "德清县"},
                           headers=headers)

    assert response.status_code == 500
    request_id = response.headers["X-Request-Id"]
    errors = [e for e in lines(stream) if e["level"] == "ERROR"]
    assert [e["request_id"] for e in errors] == [request_id]
    assert "RuntimeError" in errors[0]["exc_info"]
    assert number not in stream.getvalue()


# --- terminal colours stay out of JSON lines ---------------------------------------------------

def _has_escape(stream: io.StringIO) -> bool:
    """An escape character, raw or as JSON writes it (``\\u001b``), anywhere in the output."""
    text = stream.getvalue()
    return "\x1b" in text or "\\u001b" in text.lower()


def test_colour_codes_are_stripped_from_every_field(stream: io.StringIO) -> None:
    log.warning("status %s for %s", "\x1b[31m\x1b[1m404\x1b[0m", "\x1b[33m/nowhere\x1b[0m",
                extra={"path": "\x1b[32m/api/v1\x1b[0m", "count": 3})

    (line,) = lines(stream)
    assert line["message"] == "status 404 for /nowhere"
    assert (line["path"], line["count"]) == ("/api/v1", 3)
    assert not _has_escape(stream)


def test_werkzeug_request_lines_are_plain_json(app: Any, stream: io.StringIO) -> None:
    """werkzeug colours the status of its request log lines (yellow for a 404)."""
    import requests  # noqa: PLC0415
    from werkzeug.serving import make_server  # noqa: PLC0415

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        answer = requests.get(f"http://127.0.0.1:{server.server_port}/api/v1/nowhere",
                              timeout=10)
    finally:
        server.shutdown()
        thread.join(timeout=5)

    assert answer.status_code == 404
    (line,) = [e for e in lines(stream) if e["logger"] == "werkzeug"]
    assert line["message"].endswith('"GET /api/v1/nowhere HTTP/1.1" 404 -')
    assert not _has_escape(stream)

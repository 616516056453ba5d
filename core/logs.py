"""Structured logging: one JSON object per line, a request id on each, personal data masked.

The redaction filter is the last line of defence; code never logs an ID number, a one-time
code, a password or a token in the first place.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

from flask import Flask, g, has_request_context
from pythonjsonlogger.json import JsonFormatter

# An 18-character resident ID number anywhere in a message: keep the first 4 and last 4.
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{4})\d{10}(\d{3}[\dXx])(?![0-9A-Za-z])")
# A terminal escape sequence (CSI: ESC [ parameters final-byte), e.g. the colours that werkzeug
# and click put around a status or a path: noise inside a JSON line ("\u001b[31m").
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_SECRET_KEYS = ("password", "code", "otp", "token", "id_number", "secret")


def mask_text(text: str) -> str:
    return _ID_NUMBER.sub(lambda m: f"{m.group(1)}**********{m.group(2)}", text)


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


class RequestContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id") if has_request_context() else None
        return True


class RedactFilter(logging.Filter):
    """Masks ID numbers in the message and drops secret-looking extra fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        for key in list(vars(record)):
            if any(part in key.lower() for part in _SECRET_KEYS) and key != "msg":
                setattr(record, key, "[redacted]")
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        return True


class _MaskingJsonFormatter(JsonFormatter):
    """Masks ID numbers in tracebacks and stacks too: the formatter renders them from
    ``exc_info`` after the filters have run, so the filter cannot reach them. Strips terminal
    colour codes from every text field last, since any field (message, extra, traceback) may
    carry them."""

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {key: strip_ansi(value) if isinstance(value, str) else value
                for key, value in super().process_log_record(log_data).items()}

    def formatException(self, ei: Any) -> str:  # noqa: N802 - overrides logging.Formatter
        return _masked(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - overrides logging.Formatter
        return _masked(super().formatStack(stack_info))


def _masked(text: str | list[str]) -> str:
    """python-json-logger may return a traceback as a list of lines; ours is one string."""
    return mask_text(text if isinstance(text, str) else "\n".join(text))


def _formatter() -> logging.Formatter:
    return _MaskingJsonFormatter(
        "{asctime}{levelname}{name}{message}{request_id}",
        style="{",
        rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )


def configure(level: str = "INFO", stream: Any = None) -> None:
    """Install the JSON handler on the root logger (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_nongdai", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._nongdai = True  # type: ignore[attr-defined]
    handler.setFormatter(_formatter())
    handler.addFilter(RequestContextFilter())
    handler.addFilter(RedactFilter())
    root.addHandler(handler)
    root.setLevel(level)


def init_app(app: Flask) -> None:
    if not app.config.get("TESTING"):
        configure(app.config["NONGDAI_LOG_LEVEL"])

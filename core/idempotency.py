"""Placeholder: being written. ``@idempotent`` passes through until then."""

from collections.abc import Callable
from typing import Any

from flask import Flask


def idempotent(view: Callable[..., Any]) -> Callable[..., Any]:
    return view


def init_app(app: Flask) -> None:
    del app

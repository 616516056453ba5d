"""Agents: coordinators' work: operations registered with sync, field checks, the device client."""

from flask import Flask


def init_app(app: Flask) -> None:
    """Register agents' operations with sync (filled by the agents part)."""

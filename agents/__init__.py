"""Agents: coordinators' work: operations registered with sync, field checks, the device client.

Filled by the offline-sync issue; the foundation only reserves its place in
``create_app`` so that those issues add blueprints, jobs and commands here without rework.
"""

from flask import Flask


def init_app(app: Flask) -> None:
    """Register agents's blueprints, jobs and CLI commands (none yet)."""

"""Sync: the offline protocol only: devices, push/pull, op log, cursors, attachments.

Filled by the offline-sync issue; the foundation only reserves its place in
``create_app`` so that those issues add blueprints, jobs and commands here without rework.
"""

from flask import Flask


def init_app(app: Flask) -> None:
    """Register sync's blueprints, jobs and CLI commands (none yet)."""

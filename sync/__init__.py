"""Sync: the offline protocol only: devices, push/pull, op log, cursors, attachments.

``sync`` knows no lending and no agents (import-linter holds it to that): domains register the
operation types devices push and the entity kinds devices pull (:mod:`sync.registry`). The wire
protocol is written down in ``docs/sync-protocol.md``.
"""

from pathlib import Path

from flask import Flask

from sync import feed, push, uploads

PARTS = (push, feed, uploads)


def init_app(app: Flask) -> None:
    """Register sync's blueprints, jobs and CLI commands."""
    from core.i18n import register_catalog  # noqa: PLC0415

    register_catalog(app, Path(__file__).parent / "translations")
    for part in PARTS:
        part.init_app(app)

"""Sync feed: the change log (:mod:`sync.feed.changes`), the pull (``GET /api/v1/sync/pull``)
and the retention of the log."""

from flask import Flask

from sync.feed import changes  # noqa: F401 - the models, for the metadata and migrations


def init_app(app: Flask) -> None:
    """Register the pull's blueprint and the change log's retention job."""
    from core.api import register  # noqa: PLC0415
    from sync.feed import jobs, views  # noqa: PLC0415

    register(app, views.blp)
    jobs.init_app(app)

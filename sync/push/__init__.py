"""Sync push: devices send their operations; per-device sync state; editable records and the
conflicts their merges file for staff (docs/sync-protocol.md §3 and §6)."""

from flask import Flask

from sync.push import models as models


def init_app(app: Flask) -> None:
    """Register the push, device-state and conflict APIs."""
    from core.api import register  # noqa: PLC0415
    from sync.push import views  # noqa: PLC0415 - views load once the app is set up

    register(app, views.blp)

"""Places: counties, townships, villages (12-digit division codes) and service stations."""

from flask import Flask


def init_app(app: Flask) -> None:
    from core.api import register  # noqa: PLC0415
    from core.places.views import blp  # noqa: PLC0415

    register(app, blp)

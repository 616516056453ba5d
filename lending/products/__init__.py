"""Lending: loan products as data (admin API, the checks applications make, demo products)."""

from flask import Flask

from lending.products import models as models


def init_app(app: Flask) -> None:
    """Register this part's blueprints, jobs and commands."""
    from core.api import register  # noqa: PLC0415
    from core.demo import register_seeder  # noqa: PLC0415
    from lending.products.demo import seeder  # noqa: PLC0415
    from lending.products.views import blp  # noqa: PLC0415

    register(app, blp)
    register_seeder(app, seeder)

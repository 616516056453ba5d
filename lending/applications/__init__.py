"""Lending: applications from farmers' phones, their automatic decision, field checks and
staff review."""

from flask import Flask

from lending.applications import models as models
from lending.applications import review_models as review_models


def init_app(app: Flask) -> None:
    """Register the applications, field work and review APIs and the applications' jobs."""
    from core.api import register  # noqa: PLC0415
    from lending.applications import fieldwork_views, jobs, review_views, views  # noqa: PLC0415

    for blueprint in (views.blp, fieldwork_views.blp, review_views.blp):
        register(app, blueprint)
    jobs.init_app(app)

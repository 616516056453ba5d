"""Lending: the credit policy as data (versioned JDM decision models, crop reference data),
the facts it decides on, the engine that evaluates it, and reason codes explained."""

from flask import Flask

from lending.policy import models as models


def init_app(app: Flask) -> None:
    """Register the credit policy API and the demo policy seeder."""
    from core.api import register  # noqa: PLC0415
    from core.demo import register_seeder  # noqa: PLC0415
    from lending.policy.services import seeder  # noqa: PLC0415
    from lending.policy.views import blp  # noqa: PLC0415

    register(app, blp)
    register_seeder(app, seeder)

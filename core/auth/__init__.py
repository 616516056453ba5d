"""Authentication: one-time SMS codes for farmers, passwords for coordinators and staff,
short-lived signed access tokens, revocable refresh tokens, device-bound sessions."""

from flask import Flask

from core.auth.principals import authenticate

__all__ = ["authenticate", "init_app"]


def init_app(app: Flask) -> None:
    from core.api import register  # noqa: PLC0415
    from core.auth import purge  # noqa: PLC0415
    from core.auth.signup_views import blp as signup_blp  # noqa: PLC0415
    from core.auth.views import blp  # noqa: PLC0415
    from core.jobs import Job  # noqa: PLC0415
    from core.jobs import register as register_job  # noqa: PLC0415

    register(app, blp)
    register(app, signup_blp)
    register_job(app, Job("auth.purge", purge.purge, {"hours": 1}))

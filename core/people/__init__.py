"""People: farmers and their consents, coordinators, bank staff."""

from flask import Flask


def init_app(app: Flask) -> None:
    from core.api import register  # noqa: PLC0415
    from core.people.cli import people_cli  # noqa: PLC0415
    from core.people.views import blp  # noqa: PLC0415

    register(app, blp)
    app.cli.add_command(people_cli)

"""CLI commands that belong to no single domain (each domain adds its own in ``init_app``)."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext


@click.command("seed-demo", help="Seed the demo county, people and logins (once).")
@with_appcontext
def seed_demo_command() -> None:
    from core import demo  # noqa: PLC0415 - demo data is not part of serving requests

    click.echo(demo.seed(current_app))


def init_app(app: Flask) -> None:
    from core.i18n_cli import i18n_cli  # noqa: PLC0415 - Babel's catalog tools serve the CLI only

    app.cli.add_command(seed_demo_command)
    app.cli.add_command(i18n_cli)

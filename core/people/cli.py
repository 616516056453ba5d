"""``flask people ...``: bootstrap commands (the first admin, before anyone can sign in)."""

from __future__ import annotations

from collections.abc import Callable

import click
from flask.cli import AppGroup
from marshmallow import ValidationError, validate

from core.audit import SYSTEM
from core.db import db
from core.people import services
from core.people.schemas import PASSWORD, USERNAME

people_cli = AppGroup("people", help="Manage people (bootstrap the first admin).")


NAME = validate.Length(min=1, max=100)


def _check(rule: Callable[[str], object], value: str, what: str) -> None:
    try:
        rule(value)
    except ValidationError as exc:
        raise click.BadParameter(" ".join(exc.messages), param_hint=what) from None


@people_cli.command("create-admin")
@click.option("--username", required=True, help="Sign-in name (lowercase).")
@click.option("--name", required=True, help="Display name.")
def create_admin(username: str, name: str) -> None:
    """Create a staff member with the admin role; the password is asked for twice, hidden."""
    _check(USERNAME, username, "--username")
    _check(NAME, name.strip(), "--name")
    password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    _check(PASSWORD, password, "password")
    try:
        staff = services.create_staff(db.session, username=username, name=name.strip(),
                                      password=password, roles=["admin"], actor=SYSTEM)
    except services.UsernameTaken:
        db.session.rollback()
        raise click.ClickException(f"The username {username!r} is taken") from None
    db.session.commit()
    click.echo(f"Created admin {username} ({staff.public_id})")

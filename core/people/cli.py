"""Placeholder: being written."""

import click

people_cli = click.Group("people")

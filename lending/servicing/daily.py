"""(stub: being built)"""

from flask import Flask


def init_app(app: Flask) -> None:
    """Register this part's blueprints, jobs and commands."""

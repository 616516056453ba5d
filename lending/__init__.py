"""Lending: products, applications, registry clients, decisions, review, loans, ledger.

Filled by the origination and servicing issues; the foundation only reserves its place in
``create_app`` so that those issues add blueprints, jobs and commands here without rework.
"""

from flask import Flask


def init_app(app: Flask) -> None:
    """Register lending's blueprints, jobs and CLI commands (none yet)."""

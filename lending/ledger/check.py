"""``flask --app app ledger check``: verify every invariant of the ledger and report.

(The ledger-check helper fills this in.)
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register ``flask ledger check``."""

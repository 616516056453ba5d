"""Lending: the double-entry ledger. Every money event is one balanced journal transaction of
immutable entries; a correction is a reversal, never an edit. A loan's balances (principal,
interest, penalty, overpayment) are cached on the loan for speed and must always equal what its
entries sum to: ``flask --app app ledger check`` proves it.
"""

from flask import Flask

from lending.ledger import models as models


def init_app(app: Flask) -> None:
    """Register the ledger's CLI (``flask ledger check``)."""
    from lending.ledger import check  # noqa: PLC0415

    check.init_app(app)

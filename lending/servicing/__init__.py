"""Lending: servicing. Loans after approval: the offer and its schedule, disbursement (four
eyes, payout outbox), repayments and their allocation, the revolving household line, the daily
job (accrual, days past due, penalties, reminders, post-loan visits, portfolio at risk), and
insurance-triggered relief.

Each part registers its blueprints, jobs and commands through its ``init_app``.
"""

from flask import Flask

from lending.servicing import models as models


def init_app(app: Flask) -> None:
    """Register every servicing part."""
    from lending.servicing import (  # noqa: PLC0415
        daily,
        disbursement_views,
        line_views,
        loan_views,
        relief_views,
        repayment_views,
    )

    for part in (loan_views, disbursement_views, repayment_views, line_views, daily,
                 relief_views):
        part.init_app(app)

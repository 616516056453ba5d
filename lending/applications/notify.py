"""Telling the farmer: an SMS in the farmer's own language, sent after the transaction commits."""

from __future__ import annotations

from core import outbox
from core.db import DbSession
from core.i18n import _, in_locale
from core.people.models import Farmer
from lending.applications.models import Application
from lending.products.services import yuan


def _text(application: Application, outcome: str) -> str:
    amount = yuan(application.approved_amount_fen or application.amount_fen)
    if outcome == "approved":
        return _("[Nongdai] Your loan application is approved: %(amount)s yuan. "
                 "Open the app to see the terms.", amount=amount)
    if outcome == "declined":
        return _("[Nongdai] Your loan application was not approved. "
                 "Open the app to see why.")
    if outcome == "awaiting_field_check":
        return _("[Nongdai] Your application is received. Your village coordinator will "
                 "visit you to check your land before we decide.")
    if outcome == "info_requested":
        return _("[Nongdai] We need more information about your loan application. "
                 "Open the app to answer.")
    return _("[Nongdai] Your loan application is being reviewed by the bank. "
             "We will tell you the result by SMS.")


def tell(session: DbSession, application: Application, outcome: str) -> None:
    """Queue the SMS for ``outcome`` (approved, declined, under_review, awaiting_field_check,
    info_requested) in the farmer's language."""
    farmer: Farmer = application.farmer
    with in_locale(farmer.language):
        body = _text(application, outcome)
    outbox.queue_sms(session, farmer.phone, body)

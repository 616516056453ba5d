"""Repayment reminders: an SMS in the farmer's language some days before an installment is
due (``NONGDAI_REMINDER_DAYS_BEFORE``) and some days after a missed one
(``NONGDAI_REMINDER_DAYS_AFTER``), queued in the outbox by the daily job, set-based.

Each offset owns a window of due dates, so a day missed by the job (or a schedule that starts
inside a window) still gets its reminder, and one reminder at most per window: before offsets
``[3, 7]`` cover due dates in ``(D, D+3]`` and ``(D+3, D+7]``; after offsets ``[1, 7, 30]``
cover ``(D-7, D-1]``, ``(D-30, D-7]`` and ``D-30``. The log row ``(installment, kind, offset)``
is unique, so a re-run queues nothing twice; its ``queued`` flag is set in the transaction that
writes the SMS. The text is translated once per language in Python, and each body is built by
SQL concatenation of the translated parts with the amount (yuan, two decimals) and the date.
No reminder after a missed date while relief pauses the loan's ageing.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app

from core.db import DbSession, rowcount, table, utcnow
from core.i18n import SUPPORTED, _, default_locale, in_locale
from core.outbox import OutboxMessage
from core.people.models import Farmer
from lending.servicing.daily_models import AFTER, BEFORE, ReminderSent
from lending.servicing.daily_sql import (
    epoch_day,
    epoch_day_of,
    millis_hex,
    new_public_id,
    yuan_text,
)
from lending.servicing.models import ACTIVE, Installment, Loan

LOANS, INSTALLMENTS = table(Loan), table(Installment)
SENT, OUTBOX, FARMERS = table(ReminderSent), table(OutboxMessage), table(Farmer)
_MARK = re.compile(r"(\x00\w+\x00)")


def offsets(setting: str) -> list[int]:
    """``"1,7,30"`` -> ``[1, 7, 30]`` (sorted, positive, no repeats)."""
    return sorted({int(part) for part in str(setting).split(",") if part.strip()} - {0})


def windows(on: date) -> list[tuple[str, int, date, date]]:
    """``(kind, offset, due after, due through)`` for every configured offset."""
    cfg = current_app.config
    found: list[tuple[str, int, date, date]] = []
    before = offsets(cfg["NONGDAI_REMINDER_DAYS_BEFORE"])
    for i, days in enumerate(before):
        lower = before[i - 1] if i else 0
        found.append((BEFORE, days, on + timedelta(days=lower), on + timedelta(days=days)))
    after = offsets(cfg["NONGDAI_REMINDER_DAYS_AFTER"])
    for i, days in enumerate(after):
        upper = after[i + 1] if i + 1 < len(after) else days + 1
        found.append((AFTER, days, on - timedelta(days=upper), on - timedelta(days=days)))
    return found


def _template(kind: str) -> str:
    marks = {"amount": "\x00amount\x00", "date": "\x00date\x00", "days": "\x00days\x00"}
    if kind == BEFORE:
        return _("[Nongdai] Reminder: %(amount)s yuan of your loan is due on %(date)s. "
                 "Please repay on time.", **marks)
    return _("[Nongdai] %(amount)s yuan of your loan was due on %(date)s and is %(days)s days "
             "overdue. Please repay soon to avoid penalty interest.", **marks)


def _render(kind: str, values: dict[str, Any]) -> Any:
    """The SMS body as an SQL string expression, in each supported language."""
    by_language = []
    for language in SUPPORTED:
        with in_locale(language):
            parts = _MARK.split(_template(kind))
        pieces = [values[p.strip("\x00")] if _MARK.fullmatch(p) else sa.literal(p)
                  for p in parts if p]
        body = pieces[0]
        for piece in pieces[1:]:
            body = body + piece
        by_language.append((language, body))
    default = dict(by_language)[default_locale()]
    return sa.case(*((FARMERS.c.language == lang, body) for lang, body in by_language),
                   else_=default)


def _window_case(on: date, column: Any) -> tuple[Any, Any, Any]:
    """The (kind, offset) of the window ``column`` (a due date) falls in, and the condition
    that it falls in one: one scan of the chunk's installments for every window."""
    found = windows(on)
    inside = [sa.and_(column > lower, column <= upper) for _kind, _days, lower, upper in found]
    kind = sa.case(*((cond, w[0]) for cond, w in zip(inside, found, strict=True)), else_=None)
    days = sa.case(*((cond, w[1]) for cond, w in zip(inside, found, strict=True)), else_=None)
    return kind, days, sa.or_(*inside) if inside else sa.false()


def _log(session: DbSession, on: date, after: int, upto: int) -> None:
    """Write the log rows of the reminders due today (not yet written)."""
    kind, days, inside = _window_case(on, INSTALLMENTS.c.due_date)
    already = sa.exists().where(SENT.c.installment_id == INSTALLMENTS.c.id, SENT.c.kind == kind,
                                SENT.c.offset_days == days)
    not_paused = sa.or_(INSTALLMENTS.c.due_date > on, sa.not_(LOANS.c.relief_paused))
    rows = (sa.select(INSTALLMENTS.c.id, INSTALLMENTS.c.loan_id, kind, days, sa.literal(on),
                      sa.literal(False), sa.literal(utcnow()))
            .join(LOANS, LOANS.c.id == INSTALLMENTS.c.loan_id)
            .where(LOANS.c.status == ACTIVE, INSTALLMENTS.c.loan_id > after,
                   INSTALLMENTS.c.loan_id <= upto, INSTALLMENTS.c.paid_on.is_(None), inside,
                   not_paused, ~already))
    session.execute(sa.insert(SENT).from_select(
        ["installment_id", "loan_id", "kind", "offset_days", "business_date", "queued",
         "created_at"], rows))


def _queue(session: DbSession, on: date, after: int, upto: int) -> int:
    """Write the SMS of the log rows not queued yet; mark them queued."""
    now = utcnow()
    owed = (INSTALLMENTS.c.principal_due_fen - INSTALLMENTS.c.principal_paid_fen
            + INSTALLMENTS.c.interest_due_fen - INSTALLMENTS.c.interest_paid_fen)
    values = {"amount": yuan_text(owed), "date": sa.cast(INSTALLMENTS.c.due_date, sa.String),
              "days": sa.cast(epoch_day_of(on) - epoch_day(INSTALLMENTS.c.due_date), sa.String)}
    body = sa.case((SENT.c.kind == BEFORE, _render(BEFORE, values)),
                   else_=_render(AFTER, values))
    pending = sa.and_(SENT.c.queued.is_(False), SENT.c.loan_id > after, SENT.c.loan_id <= upto)
    rows = (sa.select(new_public_id(sa.literal(millis_hex())), sa.literal(now),
                      sa.literal("sms"), FARMERS.c.phone, body, sa.literal("pending"),
                      sa.literal(0), sa.literal(now))
            .select_from(SENT)
            .join(INSTALLMENTS, INSTALLMENTS.c.id == SENT.c.installment_id)
            .join(LOANS, LOANS.c.id == SENT.c.loan_id)
            .join(FARMERS, FARMERS.c.id == LOANS.c.farmer_id)
            .where(pending))
    queued = rowcount(session.execute(sa.insert(OUTBOX).from_select(
        ["public_id", "created_at", "channel", "recipient", "body", "status", "attempts",
         "next_attempt_at"], rows)))
    session.execute(sa.update(SENT).where(pending).values(queued=True))
    return queued


def queue(session: DbSession, on: date, after: int, upto: int) -> int:
    """Queue the reminders of business date ``on`` for the loans with ids in ``(after, upto]``;
    returns how many SMS were queued."""
    _log(session, on, after, upto)
    return _queue(session, on, after, upto)

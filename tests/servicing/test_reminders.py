"""Reminders: before a due date and after a missed one, in the farmer's language, once each."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa

from core.i18n import _, in_locale
from core.outbox import OutboxMessage
from lending.servicing.daily_models import ReminderSent
from lending.servicing.models import Installment
from tests.servicing import world as w
from tests.servicing.daily_helpers import loan, run

DUE = date(2027, 3, 4)


def _sms(session: Any) -> list[tuple[str, str]]:
    return [(m.recipient, m.body) for m in session.scalars(
        sa.select(OutboxMessage).order_by(OutboxMessage.id))]


def _expected(language: str, kind: str, amount: str, days: int = 0) -> str:
    with in_locale(language):
        if kind == "before":
            return _("[Nongdai] Reminder: %(amount)s yuan of your loan is due on %(date)s. "
                     "Please repay on time.", amount=amount, date=DUE.isoformat())
        return _("[Nongdai] %(amount)s yuan of your loan was due on %(date)s and is %(days)s "
                 "days overdue. Please repay soon to avoid penalty interest.",
                 amount=amount, date=DUE.isoformat(), days=days)


@pytest.mark.parametrize("language", ["zh_CN", "en"])
def test_a_reminder_before_the_due_date_once(session: Any, language: str) -> None:
    world = w.build(session)
    row = loan(session, world, principal_fen=1_000_005, language=language,
               schedule=[(DUE, 1_000_000, 12_345)])
    phone = row.farmer.phone
    run(session, date(2027, 2, 28))  # 4 days before: not yet
    assert _sms(session) == []
    run(session, date(2027, 3, 1))
    run(session, date(2027, 3, 1))
    run(session, date(2027, 3, 2))
    assert _sms(session) == [(phone, _expected(language, "before", "10123.45"))]
    message = session.scalars(sa.select(OutboxMessage)).one()
    assert (message.status, message.attempts, message.channel) == ("pending", 0, "sms")


@pytest.mark.parametrize("language", ["zh_CN", "en"])
def test_reminders_after_a_missed_date_once_per_offset(session: Any, language: str) -> None:
    world = w.build(session)
    row = loan(session, world, language=language, schedule=[(DUE, 1_000_000, 5)])
    session.execute(sa.update(Installment).where(Installment.loan_id == row.id)
                    .values(principal_paid_fen=999_000))  # partly paid: 10.05 yuan owed
    run(session, date(2027, 3, 1))
    before = len(_sms(session))
    for day in (date(2027, 3, 5), date(2027, 3, 5), date(2027, 3, 6), date(2027, 3, 11),
                date(2027, 3, 20), date(2027, 4, 3)):
        run(session, day)
    bodies = [body for _phone, body in _sms(session)[before:]]
    assert bodies == [_expected(language, "after", "10.05", 1),
                      _expected(language, "after", "10.05", 7),
                      _expected(language, "after", "10.05", 30)]
    logged = session.execute(sa.select(ReminderSent.kind, ReminderSent.offset_days,
                                       ReminderSent.queued).order_by(ReminderSent.id)).all()
    assert [tuple(r) for r in logged] == [("before", 3, True), ("after", 1, True),
                                          ("after", 7, True), ("after", 30, True)]


def test_no_reminder_for_paid_installments_nor_after_a_date_under_relief(session: Any) -> None:
    world = w.build(session)
    paid = loan(session, world, schedule=[(DUE, 1_000_000, 0)])
    session.execute(sa.update(Installment).where(Installment.loan_id == paid.id)
                    .values(principal_paid_fen=1_000_000, paid_on=date(2027, 2, 1)))
    paused = loan(session, world, schedule=[(DUE, 1_000_000, 0)], paused=True)
    run(session, date(2027, 3, 1))
    assert [phone for phone, _body in _sms(session)] == [paused.farmer.phone]  # before only
    run(session, date(2027, 3, 5))
    assert len(_sms(session)) == 1


def test_a_window_missed_by_the_job_is_caught_up_once(session: Any, app: Any) -> None:
    app.config["NONGDAI_REMINDER_DAYS_BEFORE"] = "3,7"
    world = w.build(session)
    loan(session, world, schedule=[(DUE, 1_000_000, 0)])
    run(session, date(2027, 3, 2))  # the 7-day window was never run: only the 3-day one
    run(session, date(2027, 3, 3))
    logged = session.execute(sa.select(ReminderSent.kind, ReminderSent.offset_days)).all()
    assert [tuple(r) for r in logged] == [("before", 3)]

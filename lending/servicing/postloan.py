"""Post-loan visits for coordinators, opened by the daily job set-based: one
``post_loan_disbursed`` after disbursement (visit within 30 days), one ``post_loan_harvest``
``NONGDAI_HARVEST_VISIT_DAYS`` before each harvest due date of a harvest-aligned loan, and one
``post_loan_overdue`` when a loan falls past due (per overdue episode: keyed by its oldest
unpaid due date, visit within 7 days).

Each ``INSERT ... SELECT`` skips what exists already (``NOT EXISTS``), so a re-run opens
nothing twice. Coordinators' devices learn of the new assignments through the change log:
the rows the ORM listener would write are written set-based in the same transaction.

The partial unique index ``uq_field_assignments_open_application`` (review) holds for
field-check assignments only, so post-loan visits of several kinds can be open together; at
most one harvest visit (the nearest due date) opens per run.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from flask import current_app

from core.db import DbSession, rowcount, table, utcnow
from lending.applications.models import FieldAssignment
from lending.servicing.daily_sql import add_days, millis_hex, new_public_id
from lending.servicing.models import ACTIVE, Installment, Loan
from sync import registry
from sync.feed import changes

DISBURSED: Final = "post_loan_disbursed"
HARVEST: Final = "post_loan_harvest"
OVERDUE: Final = "post_loan_overdue"
KINDS: Final = (DISBURSED, HARVEST, OVERDUE)
FEED_KIND: Final = "assignment"  # lending.devicefeed.ASSIGNMENT
VISIT_AFTER_DISBURSEMENT_DAYS: Final = 30
VISIT_AFTER_OVERDUE_DAYS: Final = 7
NOT_HARVEST_ALIGNED: Final = ("equal_instalments",)
# uq_field_assignments_open_application covers every kind: see the module docstring.

LOANS, INSTALLMENTS, ASSIGNMENTS = table(Loan), table(Installment), table(FieldAssignment)
COLUMNS: Final = ["public_id", "created_at", "application_id", "village_id", "kind", "loan_id",
                  "due_on", "status"]


def _exists(kind: str, due_on: Any) -> Any:
    return sa.exists().where(ASSIGNMENTS.c.loan_id == LOANS.c.id, ASSIGNMENTS.c.kind == kind,
                             ASSIGNMENTS.c.due_on == due_on)


def _row(now: datetime, kind: str, due_on: Any) -> list[Any]:
    return [new_public_id(sa.literal(millis_hex())), sa.literal(now), LOANS.c.application_id,
            LOANS.c.village_id, sa.literal(kind), LOANS.c.id, due_on, sa.literal("open")]


def _insert(session: DbSession, rows: sa.Select[Any]) -> int:
    return rowcount(session.execute(sa.insert(ASSIGNMENTS).from_select(COLUMNS, rows)))


def _disbursed(session: DbSession, now: datetime, on: date, scope: Any) -> int:
    due_on = add_days(LOANS.c.disbursed_on, VISIT_AFTER_DISBURSEMENT_DAYS)
    opened = sa.exists().where(ASSIGNMENTS.c.loan_id == LOANS.c.id,
                               ASSIGNMENTS.c.kind == DISBURSED)
    recent = LOANS.c.disbursed_on > on - timedelta(days=VISIT_AFTER_DISBURSEMENT_DAYS)
    return _insert(session, sa.select(*_row(now, DISBURSED, due_on))
                   .where(scope, LOANS.c.disbursed_on.is_not(None), recent, ~opened))


def _harvest(session: DbSession, now: datetime, on: date, scope: Any) -> int:
    ahead = on + timedelta(days=int(current_app.config["NONGDAI_HARVEST_VISIT_DAYS"]))
    due_on = (sa.select(sa.func.min(INSTALLMENTS.c.due_date))
              .where(INSTALLMENTS.c.loan_id == LOANS.c.id, INSTALLMENTS.c.paid_on.is_(None),
                     INSTALLMENTS.c.principal_due_fen > 0, INSTALLMENTS.c.due_date > on,
                     INSTALLMENTS.c.due_date <= ahead).scalar_subquery())
    return _insert(session, sa.select(*_row(now, HARVEST, due_on))
                   .where(scope, LOANS.c.kind == "term",
                          LOANS.c.repayment_type.not_in(NOT_HARVEST_ALIGNED),
                          due_on.is_not(None), ~_exists(HARVEST, due_on)))


def _overdue(session: DbSession, now: datetime, scope: Any) -> int:
    due_on = add_days(LOANS.c.oldest_due_date, VISIT_AFTER_OVERDUE_DAYS)
    return _insert(session, sa.select(*_row(now, OVERDUE, due_on))
                   .where(scope, LOANS.c.dpd >= 1, LOANS.c.oldest_due_date.is_not(None),
                          ~_exists(OVERDUE, due_on)))


def _publish(session: DbSession, now: datetime, after: int, upto: int) -> None:
    """The change-log rows of the assignments opened at ``now`` (devices pull them)."""
    if FEED_KIND not in registry.of(current_app).feeds:
        return
    rows = (sa.select(sa.literal(FEED_KIND), ASSIGNMENTS.c.public_id, ASSIGNMENTS.c.village_id,
                      sa.literal(changes.UPSERT), sa.literal(now))
            .where(ASSIGNMENTS.c.created_at == now, ASSIGNMENTS.c.loan_id > after,
                   ASSIGNMENTS.c.loan_id <= upto, ASSIGNMENTS.c.kind.in_(KINDS)))
    session.execute(sa.insert(changes.CHANGES).from_select(
        ["kind", "entity_id", "village_id", "op", "changed_at"], rows))


def assign(session: DbSession, on: date, after: int, upto: int) -> int:
    """Open the post-loan visits due on business date ``on`` for the loans with ids in
    ``(after, upto]`` (their ageing for ``on`` done); returns how many were opened."""
    now = utcnow()
    scope = sa.and_(LOANS.c.status == ACTIVE, LOANS.c.id > after, LOANS.c.id <= upto)
    opened = (_disbursed(session, now, on, scope) + _harvest(session, now, on, scope)
              + _overdue(session, now, scope))
    if opened:
        _publish(session, now, after, upto)
    return opened

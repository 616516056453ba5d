"""Repayments: money received for a loan, allocated and booked, once per channel reference.

:func:`book` takes a payment (a channel's signed notification, or a branch's record):

1. It locks the loan row (``SELECT ... FOR UPDATE`` on PostgreSQL), so concurrent payments
   for one loan book one after the other on fresh balances. SQLite has one write lock for the
   whole database: when the caller began with :func:`core.db.begin_read` (the channel's
   notification does), the look-ups (the loan, the reference, the open installments) take no
   write lock; the write then begins with one statement that re-reads the loan's row and its
   open installments, and books only if nothing booking reads has changed since. Otherwise
   it books again from the start inside the write, on fresh rows.
2. ``(channel, reference)`` seen before: the same content (its fingerprint) returns the stored
   repayment, other content is refused (409 ``reference-reused``).
3. It accrues interest and penalty to the business date (:func:`accrue_to`).
4. It allocates the amount: penalty, then interest, then principal, and the rest is an
   overpayment, credited to the loan's ``overpayment`` account (shown to the farmer; staff
   refund it with :func:`refund`). One journal: D ``repayment_clearing`` (the amount) /
   C ``penalty_receivable``, ``interest_receivable``, ``loan_principal``, ``overpayment``.
5. Installments record what was paid, in this order: interest to the open installments'
   scheduled interest in due order; principal to the installments due on or before the
   business date (oldest first), then to the current one (the next due); what is left of
   principal is an early repayment, applied from the *last* installment backwards, so the next
   due amounts stay as scheduled and the loan ends sooner. A line has one installment per draw
   (:mod:`lending.servicing.lines`) and pays its draws oldest first. An installment is paid
   (``paid_on``) when its principal is paid and its scheduled interest is paid, or, once due,
   when no accrued interest is left owing.
6. A term loan owing no principal, interest or penalty is ``settled`` (``settled_on``, every
   open installment closed). A line (penalty, interest, drawn principal) stays
   active while it can be drawn, and settles when repaid after ``line_ends_on``.

A refund posts D ``overpayment`` / C ``repayment_clearing``: the credit leaves the loan and
the money goes back out through the clearing account it came in by (the core system pays it
to the farmer and settles the clearing account as it does for receipts). Its record is its
journal (kind ``refund``; the reason in the memo).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from core import audit
from core.authz import not_found
from core.db import DbSession, Model, end_read, in_read, insert_row, table, utcnow, uuid7
from core.errors import Conflict, NotFound, ValidationFailed
from core.i18n import _, lazy_gettext
from core.jobs import business_date
from lending.ledger import accounts
from lending.ledger.models import JournalTransaction
from lending.ledger.posting import AlreadyPosted, Line, post, post_id
from lending.servicing.models import ACTIVE, SETTLED, Installment, Loan, Repayment
from lending.servicing.quotes import LoanNotActive, Scheduled, charges, open_installments

__all__ = ["LoanNotActive", "ReferenceReused", "RefundExceedsCredit", "accrue_to", "book",
           "book_or_replay", "fingerprint", "loan_by_public_id", "refund"]


class ReferenceReused(Conflict):
    code = "reference-reused"
    title = lazy_gettext("This payment reference was already used for another payment")


class RefundExceedsCredit(Conflict):
    code = "refund-exceeds-credit"
    title = lazy_gettext("The refund is larger than the loan's overpaid credit")


def fingerprint(content: dict[str, Any]) -> str:
    """A payment's identity: sha256 of its content as canonical JSON."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def loan_by_public_id(session: DbSession, public_id: uuid.UUID) -> Loan:
    loan = session.scalars(_LOAN_BY_PUBLIC_ID, {"public_id": public_id}).first()
    if loan is None:
        raise NotFound(not_found(Loan))
    return loan


def _lock(session: DbSession, loan: Loan) -> None:
    """Lock the loan row and reload it (PostgreSQL); SQLite's writers are serialised."""
    if session.get_bind().dialect.name == "sqlite":
        return
    # the rows must be fetched: populate_existing refreshes the loan as they are read
    session.scalars(sa.select(Loan).where(Loan.id == loan.id).with_for_update()
                    .execution_options(populate_existing=True)).one()


# --- accrual ----------------------------------------------------------------------------------

def accrue_to(session: DbSession, loan: Loan, through: date) -> JournalTransaction | None:
    """Book the loan's interest and penalty for the days after its last accrual up to
    ``through`` (formula: :mod:`lending.servicing.quotes`): D ``interest_receivable`` /
    C ``interest_income``, D ``penalty_receivable`` / C ``penalty_income``, one journal of
    kind ``accrual``, reference ``"<loan public id>:<through>"``. Moves ``interest_carry``,
    ``penalty_carry`` and ``accrued_through``. Nothing to do: nothing booked."""
    _lock(session, loan)
    return _accrue(session, loan, open_installments(session, loan), through)


def _accrue(session: DbSession, loan: Loan, installments: Sequence[Scheduled],
            through: date) -> JournalTransaction | None:
    start = loan.accrued_through or loan.disbursed_on
    if start is None or through <= start:
        return None
    due = charges(loan, installments, through)
    _set_accrued(session, loan, interest_carry=due.interest_carry,
                 penalty_carry=due.penalty_carry, accrued_through=through)
    if not (due.interest_fen or due.penalty_fen):
        return None
    lines = [Line(accounts.INTEREST_RECEIVABLE, due.interest_fen, loan.id),
             Line(accounts.INTEREST_INCOME, -due.interest_fen),
             Line(accounts.PENALTY_RECEIVABLE, due.penalty_fen, loan.id),
             Line(accounts.PENALTY_INCOME, -due.penalty_fen)]
    return post(session, kind="accrual", reference=f"{loan.public_id}:{through}",
                business_date=through, lines=lines, actor=audit.SYSTEM, loan_id=loan.id,
                memo={"from": str(start), "through": str(through)})


def _set_accrued(session: DbSession, loan: Loan, **values: Any) -> None:
    """Write how far the loan is accrued (a Core UPDATE; the loan object gets the values as
    committed, as if read back: no flush writes them again)."""
    params = {"b_id": loan.id, **{f"b_{name}": value for name, value in values.items()}}
    session.connection().execute(_SET_ACCRUED, params)
    for name, value in values.items():
        set_committed_value(loan, name, value)


# --- allocation -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Allocation:
    penalty_fen: int
    interest_fen: int
    principal_fen: int
    overpaid_fen: int


def allocate(loan: Loan, amount_fen: int) -> Allocation:
    """Penalty, then interest, then principal; the rest is overpaid."""
    rest = amount_fen
    parts = []
    for owed in (loan.penalty_outstanding_fen, loan.interest_outstanding_fen,
                 loan.principal_outstanding_fen):
        part = min(rest, max(owed, 0))
        parts.append(part)
        rest -= part
    return Allocation(parts[0], parts[1], parts[2], rest)


def _apply_interest(installments: Sequence[_Paid], amount: int) -> None:
    for item in installments:
        part = min(amount, max(item.interest_due_fen - item.interest_paid_fen, 0))
        item.interest_paid_fen += part
        amount -= part


def _principal_order(installments: Sequence[_Paid], today: date,
                     line: bool) -> list[_Paid]:
    """Due (oldest first), then the current installment, then the rest from the last back;
    a line's draws oldest first."""
    if line:
        return list(installments)
    due = [i for i in installments if i.due_date <= today]
    later = [i for i in installments if i.due_date > today]
    return due + later[:1] + later[1:][::-1]


def _apply_principal(installments: Sequence[_Paid], amount: int, today: date,
                     line: bool) -> None:
    for item in _principal_order(installments, today, line):
        part = min(amount, item.principal_due_fen - item.principal_paid_fen)
        item.principal_paid_fen += part
        amount -= part


def _close_paid(loan: Loan, installments: Sequence[_Paid], today: date) -> None:
    settled = loan.status == SETTLED
    no_interest = loan.interest_outstanding_fen == 0
    for item in installments:
        principal_paid = item.principal_paid_fen >= item.principal_due_fen
        interest_paid = (item.interest_paid_fen >= item.interest_due_fen
                         or (no_interest and item.due_date <= today))
        if settled or (principal_paid and interest_paid):
            item.paid_on = today


def _settle_if_paid(loan: Loan, today: date) -> None:
    owed = (loan.principal_outstanding_fen or loan.interest_outstanding_fen
            or loan.penalty_outstanding_fen)
    line_open = loan.kind == "line" and (loan.line_ends_on is None or today <= loan.line_ends_on)
    if not owed and not line_open:
        loan.status, loan.settled_on = SETTLED, today


# --- booking ----------------------------------------------------------------------------------

def _stored(session: DbSession, channel: str, reference: str) -> Repayment | None:
    """The repayment booked with this reference (a Core look-up: most payments are new)."""
    found = session.connection().execute(_STORED, {"channel": channel,
                                                   "reference": reference}).scalar()
    return None if found is None else session.get(Repayment, found)


def book(session: DbSession, loan: Loan, *, channel: str, reference: str, amount_fen: int,
         received_at: datetime, fingerprint: str, actor: str,
         staff_id: int | None = None) -> Repayment:
    """Book a payment once per ``(channel, reference)`` (see the module docstring)."""
    return book_or_replay(session, loan, channel=channel, reference=reference,
                          amount_fen=amount_fen, received_at=received_at,
                          fingerprint=fingerprint, actor=actor, staff_id=staff_id)[0]


def book_or_replay(session: DbSession, loan: Loan, *, channel: str, reference: str,
                   amount_fen: int, received_at: datetime, fingerprint: str, actor: str,
                   staff_id: int | None = None) -> tuple[Repayment, bool]:
    """:func:`book`, and whether it booked now (``False``: the stored repayment)."""
    if amount_fen <= 0:
        raise ValidationFailed(errors={"amount_fen": [_("Must be more than zero.")]})
    reading = in_read(session)
    state = _state(session, loan, lock=True)  # PostgreSQL: the loan row locked from here
    stored = _stored(session, channel, reference)
    if stored is not None:
        if stored.fingerprint != fingerprint or stored.loan_id != loan.id:
            raise ReferenceReused()
        return stored, False
    if loan.status != ACTIVE:
        raise LoanNotActive()
    if reading:  # SQLite: the reads took no write lock; the write begins here
        end_read(session, loan)
        if not _unchanged(session, loan, state):
            session.expire_all()  # another payment came first: all again, in the write
            return book_or_replay(session, loan, channel=channel, reference=reference,
                                  amount_fen=amount_fen, received_at=received_at,
                                  fingerprint=fingerprint, actor=actor, staff_id=staff_id)
    paid = _open(state)
    before = [item.values() for item in paid]
    today = business_date()
    _accrue(session, loan, paid, today)
    split = allocate(loan, amount_fen)
    journal_id = _post_repayment(session, loan, split, amount_fen=amount_fen,
                                 channel=channel, reference=reference, today=today, actor=actor)
    _apply_interest(paid, split.interest_fen)
    _apply_principal(paid, split.principal_fen, today, line=loan.kind == "line")
    _settle_if_paid(loan, today)
    _close_paid(loan, paid, today)
    _write_installments(session, paid, before)
    repayment = insert_row(session, Repayment, {
        "public_id": uuid7(), "created_at": utcnow(), "loan_id": loan.id, "channel": channel,
        "reference": reference, "fingerprint": fingerprint, "amount_fen": amount_fen,
        "received_at": received_at, "business_date": today, "penalty_fen": split.penalty_fen,
        "interest_fen": split.interest_fen, "principal_fen": split.principal_fen,
        "overpaid_fen": split.overpaid_fen, "recorded_by_staff_id": staff_id,
        "journal_id": journal_id})
    set_committed_value(repayment, "loan", loan)  # the answer shows it: no reload
    audit.record(session, "repayment.book", repayment, actor=actor, summary={
        "loan": str(loan.public_id), "channel": channel, "amount_fen": amount_fen,
        "penalty_fen": split.penalty_fen, "interest_fen": split.interest_fen,
        "principal_fen": split.principal_fen, "overpaid_fen": split.overpaid_fen,
        "status": loan.status})
    return repayment, True


def _state(session: DbSession, loan: Loan, *, lock: bool = False) -> list[tuple[Any, ...]]:
    """The loan's row (what booking reads of it) and its open installments (every column, in
    due order), one statement: what a booking decides on. With ``lock``, the loan row is
    locked (``FOR UPDATE OF loans`` on PostgreSQL; SQLite has its one write lock) and the loan
    object gets what was read as committed values (no reload)."""
    conn = session.connection()
    locking = lock and conn.dialect.name != "sqlite"
    rows = [tuple(row) for row in conn.execute(_STATE_LOCKED if locking else _STATE,
                                               {"loan_id": loan.id})]
    if lock and rows:
        for name, value in zip(_LOAN_ATTRS, rows[0], strict=False):
            set_committed_value(loan, name, value)
    return rows


def _unchanged(session: DbSession, loan: Loan, state: list[tuple[Any, ...]]) -> bool:
    """Whether the loan and its open installments are still exactly as read (the first
    statement of the write transaction). Booking decides on what it read (the accrual, the
    allocation), so a payment read outside the write lock books only on rows no one has
    changed since."""
    return _state(session, loan) == state


def _open(state: list[tuple[Any, ...]]) -> list[_Paid]:
    """The open installments of a :func:`_state`, as allocation reads and moves them."""
    at = len(_LOAN_ATTRS)
    return [_Paid(*(row[index] for index in _PAID_AT)) for row in state if row[at] is not None]


_PAID = ("principal_paid_fen", "interest_paid_fen", "paid_on")


@dataclass(slots=True)
class _Paid:
    """An open installment as allocation reads and moves it (read with Core, written back by
    :func:`_write_installments`)."""

    id: int
    due_date: date
    principal_due_fen: int
    interest_due_fen: int
    principal_paid_fen: int
    interest_paid_fen: int
    paid_on: date | None

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _PAID)


def _write_installments(session: DbSession, paid: Sequence[_Paid],
                        before: Sequence[tuple[Any, ...]]) -> None:
    """Write what changed of ``paid`` (one executemany of Core UPDATEs); an installment object
    already in the session gets the written values as committed (as if read back)."""
    changed = [item for item, was in zip(paid, before, strict=True) if item.values() != was]
    if not changed:
        return
    session.connection().execute(_UPDATE_PAID, [
        {"b_id": item.id, **{f"b_{name}": value for name, value in zip(_PAID, item.values(),
                                                                          strict=True)}}
        for item in changed])
    for item in changed:
        loaded = session.identity_map.get(identity_key(Installment, item.id))
        if loaded is not None:
            for name, value in zip(_PAID, item.values(), strict=True):
                set_committed_value(loaded, name, value)


def _post_repayment(session: DbSession, loan: Loan, split: Allocation, *, amount_fen: int,
                    channel: str, reference: str, today: date, actor: str) -> int:
    lines = [Line(accounts.REPAYMENT_CLEARING, amount_fen),
             Line(accounts.PENALTY_RECEIVABLE, -split.penalty_fen, loan.id),
             Line(accounts.INTEREST_RECEIVABLE, -split.interest_fen, loan.id),
             Line(accounts.LOAN_PRINCIPAL, -split.principal_fen, loan.id),
             Line(accounts.OVERPAYMENT, -split.overpaid_fen, loan.id)]
    try:
        return post_id(session, kind="repayment", reference=f"{channel}:{reference}",
                       business_date=today, lines=lines, actor=actor, loan_id=loan.id,
                       memo={"channel": channel, "reference": reference})
    except AlreadyPosted as exc:  # booked for another loan by a concurrent request
        raise ReferenceReused() from exc


# --- refunds ----------------------------------------------------------------------------------

def refund(session: DbSession, loan: Loan, *, amount_fen: int, reason: str,
           actor: str) -> JournalTransaction:
    """Pay back part or all of a loan's overpaid credit: D ``overpayment`` /
    C ``repayment_clearing``."""
    if amount_fen <= 0:
        raise ValidationFailed(errors={"amount_fen": [_("Must be more than zero.")]})
    _lock(session, loan)
    if amount_fen > loan.overpaid_fen:
        raise RefundExceedsCredit()
    journal = post(session, kind="refund", reference=f"{loan.public_id}:{uuid7()}",
                   business_date=business_date(), actor=actor, loan_id=loan.id,
                   lines=[Line(accounts.OVERPAYMENT, amount_fen, loan.id),
                          Line(accounts.REPAYMENT_CLEARING, -amount_fen)],
                   memo={"reason": reason})
    audit.record(session, "loan.refund", loan, actor=actor, summary={
        "amount_fen": amount_fen, "journal": str(journal.public_id)})
    return journal


# Built once (statements on every repayment's path: a request binds, it does not build).
_LOAN_BY_PUBLIC_ID = sa.select(Loan).where(Loan.public_id == sa.bindparam("public_id"))
_STORED = sa.select(Repayment.id).where(Repayment.channel == sa.bindparam("channel"),
                                        Repayment.reference == sa.bindparam("reference"))
_installments = table(Installment)
_loans = table(Loan)
_SET_ACCRUED = (sa.update(_loans).where(_loans.c.id == sa.bindparam("b_id")).values({
    name: sa.bindparam(f"b_{name}") for name in ("interest_carry", "penalty_carry",
                                                 "accrued_through")}))


def _columns(model: type[Model]) -> tuple[tuple[str, ...], list[sa.ColumnElement[Any]]]:
    """Every mapped column of ``model``: the attribute names and their columns."""
    props = sa.inspect(model).column_attrs
    return tuple(p.key for p in props), [p.columns[0] for p in props]


# What booking reads of a loan (the accrual's formula, the allocation, settling): a change to
# any of these since the read means booking again on fresh rows. Every installment column.
_LOAN_ATTRS = ("status", "kind", "disbursed_on", "accrued_through", "line_ends_on",
               "settled_on", "annual_rate_bp", "penalty_rate_bp", "day_count", "relief_paused",
               "interest_carry", "penalty_carry", "principal_outstanding_fen",
               "interest_outstanding_fen", "penalty_outstanding_fen", "overpaid_fen")
_loan_columns = [_loans.c[name] for name in _LOAN_ATTRS]
_INSTALLMENT_ATTRS, _installment_columns = _columns(Installment)
_STATE = (sa.select(*_loan_columns, *_installment_columns)
          .select_from(sa.outerjoin(_loans, _installments, sa.and_(
              _installments.c.loan_id == _loans.c.id, _installments.c.paid_on.is_(None))))
          .where(_loans.c.id == sa.bindparam("loan_id"))
          .order_by(_installments.c.due_date, _installments.c.seq))
"""A loan's row and its open installments (in due order), column for column, at once."""
_STATE_LOCKED = _STATE.with_for_update(of=_loans)
_UPDATE_PAID = (sa.update(_installments).where(_installments.c.id == sa.bindparam("b_id"))
                .values({name: sa.bindparam(f"b_{name}") for name in _PAID}))
_PAID_AT = [len(_LOAN_ATTRS) + _INSTALLMENT_ATTRS.index(name) for name in _Paid.__slots__]
"""Where each field of :class:`_Paid` is in a row of :data:`_STATE`."""

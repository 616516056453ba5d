"""Posting money events: one balanced journal transaction per event, its entries, and the
loan balance columns that cache the per-loan accounts, all in the caller's transaction.

Services call :func:`post` (or :func:`reverse`); they never write a balance column themselves.
It writes with Core statements on the session's connection (the session's pending changes
flush before the first) and never commits, like every service; the loan objects in the
session get the new balances as committed values (no flush writes them again). A second
posting of the same ``(kind, reference)`` raises :class:`AlreadyPosted` and leaves the session
usable (the INSERT does nothing on the conflict: no statement fails).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from core.db import DbSession, as_loaded, table, utcnow, uuid7
from core.errors import Conflict
from core.i18n import lazy_gettext
from lending.ledger import accounts
from lending.ledger.models import JournalEntry, JournalTransaction


@dataclass(frozen=True)
class Line:
    """One entry to post: debit positive, credit negative."""

    account: str
    amount_fen: int
    loan_id: int | None = None


class Unbalanced(ValueError):
    """A programming error: entries that do not sum to zero, an unknown account, a per-loan
    account without its loan. Never shown to a client as anything but a 500."""


class AlreadyPosted(Conflict):
    code = "already-posted"
    title = lazy_gettext("This money event has already been booked")


def check_lines(lines: Sequence[Line]) -> None:
    """Raise :class:`Unbalanced` unless ``lines`` form one valid, balanced transaction."""
    if not lines:
        raise Unbalanced("a journal transaction needs entries")
    for line in lines:
        if line.account not in accounts.ALL:
            raise Unbalanced(f"unknown account {line.account!r}")
        if line.amount_fen == 0 or not isinstance(line.amount_fen, int):
            raise Unbalanced(f"entry on {line.account} must be a nonzero integer of fen")
        if (line.account in accounts.PER_LOAN) != (line.loan_id is not None):
            raise Unbalanced(f"{line.account} entries carry a loan id exactly when per-loan")
    total = sum(line.amount_fen for line in lines)
    if total != 0:
        raise Unbalanced(f"entries sum to {total} fen, not zero")


def post(session: DbSession, *, kind: str, reference: str, business_date: date,
         lines: Iterable[Line], actor: str, loan_id: int | None = None,
         memo: dict[str, Any] | None = None,
         reverses_id: int | None = None) -> JournalTransaction:
    """Post one balanced transaction and move the loans' cached balances with it.

    Core statements (the transaction row ``INSERT ... RETURNING id``, its entries, one
    ``UPDATE`` per loan); the returned :class:`JournalTransaction` is a persistent object of
    ``session`` with the values written (its ``entries`` load when read)."""
    values = _values(kind=kind, reference=reference, business_date=business_date,
                     actor=actor, loan_id=loan_id, memo=memo, reverses_id=reverses_id)
    return as_loaded(session, JournalTransaction(id=_write(session, values, lines), **values))


def post_id(session: DbSession, *, kind: str, reference: str, business_date: date,
            lines: Iterable[Line], actor: str, loan_id: int | None = None,
            memo: dict[str, Any] | None = None) -> int:
    """:func:`post`, answering only the transaction's id: no ORM object is built, for a
    caller that keeps only the id (a repayment, on the busiest path)."""
    return _write(session, _values(kind=kind, reference=reference, business_date=business_date,
                                   actor=actor, loan_id=loan_id, memo=memo, reverses_id=None),
                  lines)


def _values(*, kind: str, reference: str, business_date: date, actor: str,
            loan_id: int | None, memo: dict[str, Any] | None,
            reverses_id: int | None) -> dict[str, Any]:
    return {"public_id": uuid7(), "created_at": utcnow(), "kind": kind, "reference": reference,
            "business_date": business_date, "loan_id": loan_id, "actor": actor,
            "memo": memo or {}, "reverses_id": reverses_id}


def _write(session: DbSession, values: dict[str, Any], lines: Iterable[Line]) -> int:
    """Insert the transaction and its entries, move the balances; the transaction's id."""
    lines = [line for line in lines if line.amount_fen != 0]
    check_lines(lines)
    session.flush()  # the session's pending changes first; then Core on its connection
    journal_id = _insert_journal(session, values)
    session.connection().execute(_INSERT_ENTRIES, [
        {"journal_id": journal_id, "account": line.account, "loan_id": line.loan_id,
         "amount_fen": line.amount_fen} for line in lines])
    _move_balances(session, lines)
    return journal_id


def _insert_journal(session: DbSession, values: dict[str, Any]) -> int:
    """Insert the transaction row; a taken ``(kind, reference)`` (or reversed transaction)
    raises :class:`AlreadyPosted` and leaves the session's transaction usable: the INSERT
    does nothing on a unique conflict (``ON CONFLICT DO NOTHING``, PostgreSQL and SQLite), so
    no statement fails and no savepoint is needed (on PostgreSQL a failed statement would
    abort the whole transaction). Any other constraint still fails loudly."""
    conn = session.connection()
    journal_id = conn.execute(_INSERT_JOURNAL[conn.dialect.name], values).scalar()
    if journal_id is None:
        raise AlreadyPosted()
    return int(journal_id)


def reverse(session: DbSession, journal: JournalTransaction, *, business_date: date,
            actor: str, memo: dict[str, Any] | None = None) -> JournalTransaction:
    """Post the mirror image of ``journal`` (a correction); a transaction is reversed once."""
    lines = [Line(e.account, -e.amount_fen, e.loan_id) for e in journal.entries]
    return post(session, kind="reversal", reference=f"{journal.kind}:{journal.reference}",
                business_date=business_date, lines=lines, actor=actor, loan_id=journal.loan_id,
                memo=memo, reverses_id=journal.id)


def _move_balances(session: DbSession, lines: Sequence[Line]) -> None:
    """One ``UPDATE ... RETURNING`` per loan; the loan object in ``session`` (if any) gets the
    new balances as committed values, as if read back."""
    from lending.servicing.models import Loan  # noqa: PLC0415 - the loan is servicing's

    moves: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for line in lines:
        if line.loan_id is not None:
            column, sign = accounts.LOAN_COLUMNS[line.account]
            moves[line.loan_id][column] += sign * line.amount_fen
    for loan_id, deltas in moves.items():
        names = tuple(sorted(name for name, delta in deltas.items() if delta))
        if not names:
            continue
        row = session.connection().execute(_move_statement(names), {
            "b_id": loan_id, **{f"b_{name}": deltas[name] for name in names}}).one()
        loan = session.identity_map.get(identity_key(Loan, loan_id))
        if loan is not None:
            for name, value in zip(names, row, strict=True):
                set_committed_value(loan, name, value)


@functools.cache
def _move_statement(names: tuple[str, ...]) -> sa.Update:
    """``UPDATE loans SET <name> = <name> + :b_<name> ... WHERE id = :b_id RETURNING <names>``
    (built once per set of columns)."""
    from lending.servicing.models import Loan  # noqa: PLC0415 - the loan is servicing's

    loans = table(Loan)
    return (sa.update(loans).where(loans.c.id == sa.bindparam("b_id"))
            .values({name: loans.c[name] + sa.bindparam(f"b_{name}") for name in names})
            .returning(*(loans.c[name] for name in names)))


def loan_balances(session: DbSession, loan_id: int) -> dict[str, int]:
    """The loan's per-loan account balances as the ledger says (debit +), every account."""
    rows = session.execute(
        sa.select(_entries.c.account, sa.func.sum(_entries.c.amount_fen))
        .where(_entries.c.loan_id == loan_id).group_by(_entries.c.account)).all()
    found = {account: int(total) for account, total in rows}
    return {account: found.get(account, 0) for account in sorted(accounts.PER_LOAN)}


_entries = table(JournalEntry)
_journals = table(JournalTransaction)
_INSERT_JOURNAL = {
    "postgresql": postgresql.insert(_journals).on_conflict_do_nothing()
    .returning(_journals.c.id),
    "sqlite": sqlite.insert(_journals).on_conflict_do_nothing().returning(_journals.c.id),
}
_INSERT_ENTRIES = sa.insert(_entries)

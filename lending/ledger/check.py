"""``flask --app app ledger check``: verify every invariant of the ledger and report.

Each invariant is one set-based query (``GROUP BY`` over the entries, joins to the loans,
disbursements, repayments and installments) that selects what breaks it; the report gives, per
invariant, how many rows break it and a few of them. :func:`run` returns the :class:`Report`
(tests and the season simulation call it); the command prints it, or ``--json``, and exits 1
when any invariant fails. It only reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import click
import sqlalchemy as sa
from flask import Flask
from flask.cli import AppGroup

from core.db import DbSession, db, table
from lending.ledger import accounts
from lending.ledger.models import JournalEntry, JournalTransaction
from lending.servicing.models import Disbursement, Installment, Loan, Repayment

E = table(JournalEntry)
J = table(JournalTransaction)
L = table(Loan)
D = table(Disbursement)
R = table(Repayment)
I = table(Installment)  # noqa: E741 - the installments, beside E, J, L, D, R

EXAMPLES = 5


@dataclass
class Finding:
    """One invariant: its name, what it says, how many rows break it, and some of them."""

    name: str
    title: str
    failures: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failures == 0


@dataclass
class Report:
    findings: list[Finding]
    totals: dict[str, int]

    @property
    def ok(self) -> bool:
        return all(finding.ok for finding in self.findings)

    @property
    def failed(self) -> list[str]:
        return [finding.name for finding in self.findings if not finding.ok]

    @property
    def problems(self) -> list[str]:
        """One line per failing invariant: its name, what it says, how many rows break it."""
        return [f"{f.name}: {f.title} ({f.failures} failing)" for f in self.findings if not f.ok]

    def summary(self) -> str:
        if self.ok:
            return f"all {len(self.findings)} invariants hold"
        return f"{len(self.failed)} of {len(self.findings)} invariants fail"

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "totals": self.totals, "failed": self.failed,
                "invariants": [{"name": f.name, "title": f.title, "ok": f.ok,
                                "failures": f.failures, "examples": f.examples}
                               for f in self.findings]}

    def text(self) -> str:
        totals = ", ".join(f"{count:,} {what}" for what, count in self.totals.items())
        lines = [f"ledger check: {totals}"]
        for f in self.findings:
            lines.append(f"  {'ok  ' if f.ok else 'FAIL'}  {f.name}: {f.title}"
                         + ("" if f.ok else f" ({f.failures:,} failing)"))
            lines.extend(f"          {json.dumps(example, ensure_ascii=False)}"
                         for example in f.examples)
        lines.append(f"result: {self.summary()}")
        return "\n".join(lines)


Query = Callable[[str], sa.Select[Any]]  # dialect name -> the rows that break the invariant


# --- the journal and its entries ----------------------------------------------------------

def _balanced(_dialect: str) -> sa.Select[Any]:
    sums = (sa.select(E.c.journal_id, sa.func.sum(E.c.amount_fen).label("sum_fen"))
            .group_by(E.c.journal_id).having(sa.func.sum(E.c.amount_fen) != 0).subquery())
    return (sa.select(J.c.public_id.label("journal"), J.c.kind, J.c.reference, sums.c.sum_fen)
            .join(sums, sums.c.journal_id == J.c.id))


def _two_entries(_dialect: str) -> sa.Select[Any]:
    count = sa.func.count(E.c.id)
    return (sa.select(J.c.public_id.label("journal"), J.c.kind, J.c.reference,
                      count.label("entries"))
            .outerjoin(E, E.c.journal_id == J.c.id)
            .group_by(J.c.id, J.c.public_id, J.c.kind, J.c.reference).having(count < 2))


def _entry_rows() -> sa.Select[Any]:
    return (sa.select(J.c.public_id.label("journal"), J.c.kind, E.c.account, E.c.loan_id,
                      E.c.amount_fen).join(J, J.c.id == E.c.journal_id))


def _nonzero_entries(_dialect: str) -> sa.Select[Any]:
    return _entry_rows().where(E.c.amount_fen == 0)


def _known_accounts(_dialect: str) -> sa.Select[Any]:
    return _entry_rows().where(E.c.account.not_in(sorted(accounts.ALL)))


def _loan_ids(_dialect: str) -> sa.Select[Any]:
    return _entry_rows().where(sa.or_(
        sa.and_(E.c.account.in_(sorted(accounts.PER_LOAN)), E.c.loan_id.is_(None)),
        sa.and_(E.c.account.in_(sorted(accounts.BANK)), E.c.loan_id.is_not(None))))


def _ledger_total(_dialect: str) -> sa.Select[Any]:
    total = sa.func.sum(E.c.amount_fen)
    return sa.select(total.label("sum_fen")).having(total != 0)


# --- loans: cached balances, signs, settlement, installments ---------------------------------

def _per_loan_sums() -> sa.Subquery:
    """Each loan's per-loan account balances as the entries say, in the loan columns' sign."""
    columns = [(sign * sa.func.sum(sa.case((E.c.account == account, E.c.amount_fen), else_=0)))
               .label(column) for account, (column, sign) in accounts.LOAN_COLUMNS.items()]
    return (sa.select(E.c.loan_id, *columns).where(E.c.loan_id.is_not(None))
            .group_by(E.c.loan_id).subquery("ledger"))


def _columns() -> list[str]:
    return [column for column, _sign in accounts.LOAN_COLUMNS.values()]


def _cached_balances(_dialect: str) -> sa.Select[Any]:
    sums = _per_loan_sums()
    pairs = [(L.c[name], sa.func.coalesce(sums.c[name], 0)) for name in _columns()]
    shown = [col for cached, ledger in pairs
             for col in (cached, ledger.label(f"ledger_{cached.name}"))]
    return (sa.select(L.c.public_id.label("loan"), *shown)
            .outerjoin(sums, sums.c.loan_id == L.c.id)
            .where(sa.or_(*[cached != ledger for cached, ledger in pairs])))


def _non_negative(_dialect: str) -> sa.Select[Any]:
    sums = _per_loan_sums()
    pairs = [(L.c[name], sa.func.coalesce(sums.c[name], 0)) for name in _columns()]
    shown = [col for cached, ledger in pairs
             for col in (cached, ledger.label(f"ledger_{cached.name}"))]
    return (sa.select(L.c.public_id.label("loan"), *shown)
            .outerjoin(sums, sums.c.loan_id == L.c.id)
            .where(sa.or_(*[sa.or_(cached < 0, ledger < 0) for cached, ledger in pairs])))


def _settled_owe_nothing(_dialect: str) -> sa.Select[Any]:
    owed = (L.c.principal_outstanding_fen, L.c.interest_outstanding_fen,
            L.c.penalty_outstanding_fen)
    return (sa.select(L.c.public_id.label("loan"), *owed)
            .where(L.c.status == "settled", sa.or_(*[column != 0 for column in owed])))


def _installments(_dialect: str) -> sa.Select[Any]:
    return (sa.select(L.c.public_id.label("loan"), I.c.seq, I.c.principal_due_fen,
                      I.c.principal_paid_fen).join(L, L.c.id == I.c.loan_id)
            .where(sa.or_(I.c.principal_paid_fen > I.c.principal_due_fen,
                          I.c.principal_paid_fen < 0)))


# --- money events: disbursements, repayments, reversals -----------------------------------

def _uuid_text(column: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[Any]:
    """A UUID column as ``str(uuid)`` in SQL (to look the text up through its index):
    PostgreSQL's uuid type casts to it; SQLite stores 32 hex digits, to hyphenate."""
    if dialect != "sqlite":
        return sa.cast(column, sa.Text)
    parts: list[sa.ColumnElement[Any]] = [
        sa.func.substr(column, start, length)
        for start, length in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))]
    text = parts[0]
    for part in parts[1:]:
        text = text.op("||")("-").op("||")(part)
    return text


def _disbursements(dialect: str) -> sa.Select[Any]:
    """Every authorised disbursement has its journal (kind ``disbursement``, reference its
    public id, the one it points to) debiting the loan's principal by exactly its amount."""
    principal = (sa.select(E.c.journal_id, E.c.loan_id,
                           sa.func.sum(E.c.amount_fen).label("principal_fen"))
                 .join(J, J.c.id == E.c.journal_id)
                 .where(J.c.kind == "disbursement", E.c.account == accounts.LOAN_PRINCIPAL)
                 .group_by(E.c.journal_id, E.c.loan_id).subquery("principal"))
    booked = sa.func.coalesce(principal.c.principal_fen, 0)
    return (sa.select(D.c.public_id.label("disbursement"), D.c.amount_fen,
                      J.c.public_id.label("journal"), booked.label("principal_fen"))
            .outerjoin(J, sa.and_(J.c.kind == "disbursement",
                                  J.c.reference == _uuid_text(D.c.public_id, dialect)))
            .outerjoin(principal, sa.and_(principal.c.journal_id == J.c.id,
                                          principal.c.loan_id == D.c.loan_id))
            .where(D.c.status == "authorised",
                   sa.or_(J.c.id.is_(None), booked != D.c.amount_fen,
                          D.c.journal_id.is_distinct_from(J.c.id))))


def _disbursement_journals(dialect: str) -> sa.Select[Any]:
    """Every disbursement journal belongs to a booked disbursement (authorised, or failed and
    reversed since)."""
    owner = sa.and_(_is_uuid_of(D.c.public_id, J.c.reference, dialect),
                    D.c.status.in_(("authorised", "failed")))
    return (sa.select(J.c.public_id.label("journal"), J.c.reference)
            .where(J.c.kind == "disbursement", ~sa.exists().where(owner)))


def _is_uuid_of(column: sa.ColumnElement[Any], text: sa.ColumnElement[Any],
                dialect: str) -> sa.ColumnElement[bool]:
    """``column`` (a UUID) written as ``text``, comparing on the UUID's side so that its unique
    index serves the lookup on SQLite (32 hex digits stored)."""
    if dialect != "sqlite":
        return sa.cast(column, sa.Text) == text
    return column == sa.func.replace(text, "-", "")


def _repayments(_dialect: str) -> sa.Select[Any]:
    """A repayment's allocation sums to its amount, and its journal credits exactly that
    allocation to the loan's accounts and debits the amount received."""
    def credit(account: str) -> sa.ColumnElement[Any]:
        mine = sa.and_(E.c.account == account, E.c.loan_id == R.c.loan_id)
        return -sa.func.sum(sa.case((mine, E.c.amount_fen), else_=0))

    parts = {"penalty_fen": accounts.PENALTY_RECEIVABLE,
             "interest_fen": accounts.INTEREST_RECEIVABLE,
             "principal_fen": accounts.LOAN_PRINCIPAL, "overpaid_fen": accounts.OVERPAYMENT}
    posted = (sa.select(R.c.id.label("repayment_id"),
                        *[credit(account).label(name) for name, account in parts.items()],
                        sa.func.sum(sa.case((E.c.amount_fen > 0, E.c.amount_fen), else_=0))
                        .label("debits_fen"))
              .join(E, E.c.journal_id == R.c.journal_id).group_by(R.c.id).subquery("posted"))
    allocated = sum((R.c[name] for name in parts), start=sa.literal(0))
    mismatched = [sa.func.coalesce(posted.c[name], 0) != R.c[name] for name in parts]
    return (sa.select(R.c.public_id.label("repayment"), R.c.amount_fen,
                      *[R.c[name] for name in parts],
                      *[posted.c[name].label(f"journal_{name}") for name in parts])
            .outerjoin(posted, posted.c.repayment_id == R.c.id)
            .outerjoin(J, J.c.id == R.c.journal_id)
            .where(sa.or_(allocated != R.c.amount_fen, J.c.id.is_(None),
                          J.c.loan_id.is_distinct_from(R.c.loan_id),
                          sa.func.coalesce(posted.c.debits_fen, 0) != R.c.amount_fen,
                          *mismatched)))


def _reversals(_dialect: str) -> sa.Select[Any]:
    """A reversal holds exactly its original's entries with the opposite sign: per account and
    loan, the two sum to zero over the same number of entries."""
    rev = J.alias("rev")

    def side(journal: sa.ColumnElement[Any], n: int) -> sa.Select[Any]:
        return (sa.select(rev.c.id.label("pair"), E.c.account, E.c.loan_id,
                          E.c.amount_fen.label("amount"), sa.literal(n).label("n"))
                .join(E, E.c.journal_id == journal).where(rev.c.reverses_id.is_not(None)))

    both = sa.union_all(side(rev.c.id, 1), side(rev.c.reverses_id, -1)).subquery("both")
    amount, n = sa.func.sum(both.c.amount), sa.func.sum(both.c.n)
    diff = (sa.select(both.c.pair, both.c.account, both.c.loan_id,
                      amount.label("difference_fen"), n.label("entries_difference"))
            .group_by(both.c.pair, both.c.account, both.c.loan_id)
            .having(sa.or_(amount != 0, n != 0)).subquery("diff"))
    mismatched = (sa.select(J.c.public_id.label("reversal"), diff.c.account, diff.c.loan_id,
                            diff.c.difference_fen, diff.c.entries_difference)
                  .join(diff, diff.c.pair == J.c.id))
    unlinked = (sa.select(J.c.public_id.label("reversal"), sa.null().label("account"),
                          sa.null().label("loan_id"), sa.null().label("difference_fen"),
                          sa.null().label("entries_difference"))
                .where(J.c.kind == "reversal", J.c.reverses_id.is_(None)))
    return sa.select(sa.union_all(mismatched, unlinked).subquery("broken"))


INVARIANTS: tuple[tuple[str, str, Query], ...] = (
    ("balanced", "every journal transaction sums to zero", _balanced),
    ("two_entries", "every journal transaction has at least two entries", _two_entries),
    ("nonzero_entries", "no entry is zero", _nonzero_entries),
    ("known_accounts", "every entry is on an account of the chart", _known_accounts),
    ("loan_ids", "per-loan accounts carry a loan id, bank accounts none", _loan_ids),
    ("cached_balances", "each loan's cached balances equal the sums of its entries",
     _cached_balances),
    ("non_negative", "no negative principal, interest or penalty owed, no negative overpaid",
     _non_negative),
    ("disbursements", "every authorised disbursement has exactly one journal of its amount",
     _disbursements),
    ("disbursement_journals", "every disbursement journal belongs to a booked disbursement",
     _disbursement_journals),
    ("repayments", "every repayment's allocation sums to its amount, as its journal posts it",
     _repayments),
    ("reversals", "a reversal reverses exactly the entries of its original", _reversals),
    ("installments", "no installment's principal paid exceeds its principal due",
     _installments),
    ("settled_loans", "a settled loan owes nothing", _settled_owe_nothing),
    ("ledger_total", "the whole ledger sums to zero", _ledger_total),
)


def run(session: DbSession, examples: int = EXAMPLES) -> Report:
    """Check every invariant; ``examples`` failing rows of each at most."""
    dialect = session.get_bind().dialect.name
    findings = [_check(session, name, title, query(dialect), examples)
                for name, title, query in INVARIANTS]
    totals = {"journals": _count(session, J), "entries": _count(session, E),
              "loans": _count(session, L)}
    return Report(findings, totals)


def _check(session: DbSession, name: str, title: str, broken: sa.Select[Any],
           examples: int) -> Finding:
    rows = broken.subquery("broken_rows")
    failures = int(session.scalar(sa.select(sa.func.count()).select_from(rows)) or 0)
    found = session.execute(sa.select(rows).limit(examples)).mappings().all() if failures else []
    return Finding(name, title, failures, [{k: _plain(v) for k, v in row.items()}
                                           for row in found])


def _count(session: DbSession, model_table: sa.Table) -> int:
    return int(session.scalar(sa.select(sa.func.count()).select_from(model_table)) or 0)


def _plain(value: Any) -> Any:
    if isinstance(value, UUID | date):
        return str(value)
    if isinstance(value, Decimal):
        return int(value)
    return value


ledger_cli = AppGroup("ledger", help="The double-entry ledger.")


@ledger_cli.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option("--examples", default=EXAMPLES, show_default=True,
              help="Failing rows to show per invariant.")
def check_command(as_json: bool, examples: int) -> None:
    """Verify every ledger invariant; exit 1 when any fails."""
    report = run(db.session, examples)
    db.session.rollback()
    click.echo(json.dumps(report.as_dict(), ensure_ascii=False) if as_json else report.text())
    if not report.ok:
        raise SystemExit(1)


def init_app(app: Flask) -> None:
    """Register ``flask ledger check``."""
    app.cli.add_command(ledger_cli)

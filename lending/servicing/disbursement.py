"""Disbursement with four eyes, booked exactly once with its ledger entries.

A term loan the farmer has accepted is paid out when one staff member (reviewer or approver)
*initiates* its disbursement and another, an approver, *authorises* it; the authorisation
books it at once (:func:`book`): one journal transaction D loan_principal / C payout_clearing,
the loan ``active`` from the business date, its schedule installed, and a payout instruction
handed to the payout port (:mod:`lending.servicing.payouts`), all in the request's
transaction. An approver may instead *reject* it (the initiator may withdraw their own).

Exactly once, by three locks in depth:

- ``initiate`` takes the loan's row lock and refuses a second disbursement while one is
  initiated or authorised, or once the loan is no longer ``accepted`` (409);
- ``(loan_id, seq)`` is unique and ``seq`` is the next after every earlier attempt (a rejected
  or failed one keeps its row): two initiations that race past the check collide there, and
  the loser answers 409 instead of a second row;
- ``authorise`` and ``reject`` are conditional UPDATEs from ``initiated``: of two approvers
  acting at once, one moves it and the other gets 409, and the journal's unique
  ``(kind, reference)`` (the disbursement's public id) would stop a second booking anyway.

:func:`book` is shared with the revolving line (kind ``line``): each draw is a disbursement
(seq 1, 2, ...) the line's own flow authorises; a draw installs no schedule and the line stays
``active``.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from core import audit, outbox
from core.authz import Principal
from core.db import DbSession, rowcount, savepoint, table, utcnow
from core.errors import Conflict, Forbidden
from core.i18n import _, in_locale, lazy_gettext
from core.jobs import business_date as today
from lending.applications.review import FourEyes
from lending.ledger import accounts, posting
from lending.ledger.models import JournalTransaction
from lending.products.services import yuan
from lending.servicing import payouts, schedules
from lending.servicing.models import ACCEPTED, ACTIVE, Disbursement, Loan

INITIATED: Final = "initiated"
AUTHORISED: Final = "authorised"
REJECTED: Final = "rejected"
FAILED: Final = "failed"  # booked, then the payout failed and was reversed
STATUSES: Final = (INITIATED, AUTHORISED, REJECTED, FAILED)
LIVE: Final = (INITIATED, AUTHORISED)
TERM: Final = "term"
LINE: Final = "line"

__all__ = ["AlreadyInitiated", "AuthoriserRequired", "FourEyes", "LoanNotDisbursable",
           "NotInitiated", "authorise", "book", "initiate", "next_seq", "reject"]


class LoanNotDisbursable(Conflict):
    code = "loan-not-disbursable"
    title = lazy_gettext("The loan cannot be disbursed in its current state")


class AlreadyInitiated(Conflict):
    code = "disbursement-exists"
    title = lazy_gettext("The loan already has a disbursement in progress or booked")


class NotInitiated(Conflict):
    code = "disbursement-decided"
    title = lazy_gettext("The disbursement is no longer waiting for a decision")


class AuthoriserRequired(Forbidden):
    code = "authoriser-required"
    title = lazy_gettext("Only an approver authorises or rejects a disbursement")


# --- initiate, authorise, reject --------------------------------------------------------------

def initiate(session: DbSession, loan: Loan, principal: Principal, *,
             reason: str = "") -> Disbursement:
    """Staff member ``principal`` asks for the accepted term loan to be paid out in full."""
    if not principal.has_any(frozenset({"reviewer", "approver"})):
        raise AuthoriserRequired(_("Only a reviewer or an approver initiates a disbursement"))
    _lock(session, loan)
    if loan.kind != TERM or loan.status != ACCEPTED:
        raise LoanNotDisbursable(_("A %(kind)s loan in status %(status)s is not disbursed "
                                   "by staff", kind=loan.kind, status=loan.status))
    if _live(session, loan):
        raise AlreadyInitiated(_("This loan's disbursement is already initiated or booked"))
    row = Disbursement(loan=loan, seq=next_seq(session, loan), amount_fen=loan.principal_fen,
                       status=INITIATED, initiated_by=principal.ref,
                       initiated_by_staff_id=principal.id, reason=reason)
    try:
        with savepoint(session):
            session.add(row)
            session.flush()
    except IntegrityError as exc:  # a concurrent initiation took this seq first
        raise AlreadyInitiated(
            _("This loan's disbursement is already initiated or booked")) from exc
    audit.record(session, "disbursement.initiate", row, actor=principal.ref, summary={
        "loan_id": str(loan.public_id), "seq": row.seq, "amount_fen": row.amount_fen})
    return row


def authorise(session: DbSession, disbursement: Disbursement,
              principal: Principal) -> Disbursement:
    """An approver other than the initiator authorises it; it is booked at once."""
    if "approver" not in principal.roles:
        raise AuthoriserRequired()
    if principal.is_staff and principal.id == disbursement.initiated_by_staff_id:
        raise FourEyes(_("You initiated this disbursement; another approver must "
                         "authorise it"))
    _lock(session, disbursement.loan)
    _decide(session, disbursement, AUTHORISED, authorised_by_staff_id=principal.id,
            authorised_at=utcnow())
    audit.record(session, "disbursement.authorise", disbursement, actor=principal.ref,
                 summary={"loan_id": str(disbursement.loan.public_id),
                          "amount_fen": disbursement.amount_fen})
    book(session, disbursement, business_date=today(), actor=principal.ref)
    return disbursement


def reject(session: DbSession, disbursement: Disbursement, principal: Principal, *,
           reason: str) -> Disbursement:
    """An approver rejects it (or its initiator withdraws it), with a reason; the loan stays
    accepted and may be initiated again."""
    own = principal.is_staff and principal.id == disbursement.initiated_by_staff_id
    if "approver" not in principal.roles and not own:
        raise AuthoriserRequired()
    _lock(session, disbursement.loan)
    _decide(session, disbursement, REJECTED)
    audit.record(session, "disbursement.reject", disbursement, actor=principal.ref, summary={
        "loan_id": str(disbursement.loan.public_id), "reason": reason, "withdrawn": own})
    return disbursement


def next_seq(session: DbSession, loan: Loan) -> int:
    """The loan's next disbursement number: 1, then one past every earlier attempt."""
    last = session.scalar(sa.select(sa.func.max(Disbursement.seq))
                          .where(Disbursement.loan_id == loan.id))
    return (last or 0) + 1


def _live(session: DbSession, loan: Loan) -> bool:
    return bool(session.scalar(sa.select(sa.exists().where(
        Disbursement.loan_id == loan.id, Disbursement.status.in_(LIVE)))))


def _lock(session: DbSession, loan: Loan) -> None:
    """The loan's row lock (PostgreSQL; SQLite's write lock covers it), its row read afresh."""
    session.scalars(sa.select(Loan).where(Loan.id == loan.id).with_for_update()
                    .execution_options(populate_existing=True)).one()


def _decide(session: DbSession, disbursement: Disbursement, target: str,
            **values: Any) -> None:
    moved = session.execute(
        sa.update(_table).where(_table.c.id == disbursement.id, _table.c.status == INITIATED)
        .values(status=target, **values))
    session.refresh(disbursement)
    if rowcount(moved) != 1:
        raise NotInitiated(_("This disbursement is already %(status)s",
                             status=disbursement.status))


# --- booking ----------------------------------------------------------------------------------

def book(session: DbSession, disbursement: Disbursement, *, business_date: date,
         actor: str) -> JournalTransaction:
    """Post an authorised disbursement with its consequences, in the caller's transaction.

    D loan_principal / C payout_clearing (kind ``disbursement``, reference the disbursement's
    public id); the loan's first booking makes it ``active`` from ``business_date``; a term
    loan's schedule is installed from that day; the payout port gets its instruction; the
    farmer gets an SMS. Booking the same disbursement twice raises
    :class:`~lending.ledger.posting.AlreadyPosted` (409).
    """
    loan = disbursement.loan
    _lock(session, loan)
    _check_bookable(loan)
    amount = disbursement.amount_fen
    journal = posting.post(
        session, kind="disbursement", reference=str(disbursement.public_id),
        business_date=business_date, actor=actor, loan_id=loan.id,
        lines=[posting.Line(accounts.LOAN_PRINCIPAL, amount, loan.id),
               posting.Line(accounts.PAYOUT_CLEARING, -amount)],
        memo={"seq": disbursement.seq})
    disbursement.journal_id = journal.id
    disbursement.business_date = business_date
    if loan.disbursed_on is None:
        loan.disbursed_on = business_date
        loan.status = ACTIVE
    session.flush()
    if loan.kind == TERM:
        schedules.install(session, loan, business_date)
    instruction = payouts.adapter().instruct(session, disbursement, loan)
    audit.record(session, "disbursement.book", disbursement, actor=actor, summary={
        "loan_id": str(loan.public_id), "amount_fen": amount, "seq": disbursement.seq,
        "journal_id": str(journal.public_id),
        "payout_id": str(instruction.public_id) if instruction else None})
    _tell(session, loan, disbursement)
    return journal


def _check_bookable(loan: Loan) -> None:
    wanted = ACCEPTED if loan.kind == TERM else ACTIVE
    if loan.status != wanted:
        raise LoanNotDisbursable(_("A %(kind)s loan in status %(status)s is not disbursed",
                                   kind=loan.kind, status=loan.status))


def _tell(session: DbSession, loan: Loan, disbursement: Disbursement) -> None:
    farmer = loan.farmer
    amount = yuan(disbursement.amount_fen)
    with in_locale(farmer.language):
        if loan.kind == TERM:
            body = _("[Nongdai] Your loan of %(amount)s yuan is being paid to your account. "
                     "Open the app to see your repayment schedule.", amount=amount)
        else:
            body = _("[Nongdai] Your draw of %(amount)s yuan is being paid to your account.",
                     amount=amount)
    outbox.queue_sms(session, farmer.phone, body)


_table = table(Disbursement)

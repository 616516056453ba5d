"""Offers and loans as their readers see them: the schedule preview with plain-language
explanations (the caller's language, dates as the reader writes them), and a loan's balances,
schedule with what is paid, next due and, for a line, what can be drawn."""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from core.api import paginate
from core.db import DbSession
from core.i18n import _, lazy_gettext
from core.jobs import business_date
from core.places.models import Village
from lending.applications.fieldwork import by_id
from lending.applications.models import Application
from lending.products.models import LoanProduct
from lending.products.services import yuan
from lending.servicing import lines, schedules
from lending.servicing.loans import (
    NextDue,
    check_offer,
    long_date,
    new_loan,
    next_due,
    next_dues,
)
from lending.servicing.models import Installment, Loan

# --- what the farmer reads ---------------------------------------------------------------------

CROP_NAMES = {"rice": lazy_gettext("rice"), "wheat": lazy_gettext("wheat"),
              "corn": lazy_gettext("corn"), "soybean": lazy_gettext("soybean")}


def percent(rate_bp: int) -> str:
    return f"{rate_bp // 100}.{rate_bp % 100:02d}"


def _crop_name(crop: str) -> str:
    name = CROP_NAMES.get(crop)
    return str(name) if name is not None else crop


def _when_bullet(loan: Loan, rows: list[schedules.Planned],
                 cal: schedules.CropCalendar | None, start: date) -> str:
    due = rows[0]
    if cal is not None and due.due_date == schedules.next_harvest(cal, start):
        return _("Repay everything, %(amount)s yuan, in one payment at the %(crop)s harvest, "
                 "by %(date)s.", amount=yuan(due.total_fen), crop=_crop_name(loan.crop),
                 date=long_date(due.due_date))
    return _("Repay everything, %(amount)s yuan, in one payment at the end of the term, "
             "by %(date)s.", amount=yuan(due.total_fen), date=long_date(due.due_date))


def _when_monthly(loan: Loan, rows: list[schedules.Planned]) -> list[str]:
    first, last = rows[0], rows[-1]
    if loan.repayment_type == schedules.INTEREST_ONLY:
        return [_("Pay the interest every month from %(first)s; repay the %(principal)s yuan "
                  "borrowed with the last payment, by %(last)s.", first=long_date(first.due_date),
                  principal=yuan(loan.principal_fen), last=long_date(last.due_date))]
    texts = []
    if loan.grace_months and len(rows) > 1:
        texts.append(_("For the first %(months)d months you pay only the interest.",
                       months=min(loan.grace_months, len(rows) - 1)))
    paying = [row for row in rows if row.principal_due_fen]
    texts.append(_("Pay %(count)d monthly instalments of %(amount)s yuan from %(first)s; the "
                   "last, by %(last)s, is %(final)s yuan.", count=len(paying),
                   amount=yuan(paying[0].total_fen), first=long_date(paying[0].due_date),
                   last=long_date(last.due_date), final=yuan(last.total_fen)))
    return texts


def explain(loan: Loan, rows: list[schedules.Planned], cal: schedules.CropCalendar | None,
            start: date) -> list[str]:
    """When repayments fall and what they cost, in plain words (the caller's language)."""
    rate = _("Interest is %(rate)s%% a year, counted every day on what you still owe "
             "(day count %(day_count)s).", rate=percent(loan.annual_rate_bp),
             day_count=loan.day_count)
    if loan.kind == "line":
        ends = loan.line_ends_on or loan.maturity_date or date.max
        return [_("Draw any part of %(amount)s yuan at any time until %(date)s, and repay at "
                  "any time. You pay interest only on what you have drawn, for the days you "
                  "have it.", amount=yuan(loan.principal_fen), date=long_date(ends)),
                rate]
    when = [_when_bullet(loan, rows, cal, start)] if loan.repayment_type == schedules.BULLET \
        else _when_monthly(loan, rows)
    interest = sum(row.interest_due_fen for row in rows)
    return [*when, rate, _("In all you repay %(total)s yuan: the %(principal)s yuan borrowed and "
                           "%(interest)s yuan interest, if you pay on time.",
                           total=yuan(loan.principal_fen + interest),
                           principal=yuan(loan.principal_fen), interest=yuan(interest))]


def _planned_view(row: schedules.Planned) -> dict[str, Any]:
    return {"seq": row.seq, "due_date": row.due_date, "principal_due_fen": row.principal_due_fen,
            "interest_due_fen": row.interest_due_fen, "total_fen": row.total_fen}


def offer(session: DbSession, application: Application) -> dict[str, Any]:
    """The offer of an approved application as if it were disbursed today (the business
    date): the schedule, its totals, the rate and plain-language explanations."""
    check_offer(application)
    start = business_date()
    loan = new_loan(session, application, start)
    cal = schedules.calendar_for(session, loan.crop, loan.county_code) \
        if loan.repayment_type == schedules.BULLET else None
    rows = [] if loan.kind == "line" else schedules.plan(
        repayment_type=loan.repayment_type, principal_fen=loan.principal_fen,
        annual_rate_bp=loan.annual_rate_bp, day_count=loan.day_count,
        term_months=loan.term_months, grace_months=loan.grace_months, start=start, calendar=cal)
    interest = sum(row.interest_due_fen for row in rows)
    principal = sum(row.principal_due_fen for row in rows)
    return {
        "application_id": application.public_id, "product": application.product,
        "kind": loan.kind, "repayment_type": loan.repayment_type, "crop": loan.crop,
        "principal_fen": loan.principal_fen, "term_months": loan.term_months,
        "grace_months": loan.grace_months, "annual_rate_bp": loan.annual_rate_bp,
        "penalty_rate_bp": loan.penalty_rate_bp, "day_count": loan.day_count,
        "start_on": start, "maturity_date": rows[-1].due_date if rows else loan.line_ends_on,
        "installments": [_planned_view(row) for row in rows],
        "totals": {"principal_fen": principal, "interest_fen": interest,
                   "total_fen": principal + interest},
        "line": _line_view(loan),
        "explanation": explain(loan, rows, cal, start),
    }


def _line_view(loan: Loan) -> dict[str, Any] | None:
    """A line's limit, drawn and available amounts as of the business date: nothing is
    available while it is frozen, past its review date or ended (``lines.state``)."""
    if loan.kind != "line":
        return None
    if loan.id is None:  # an offer: the line as it opens on acceptance
        limit = loan.limit_fen or 0
        return {"limit_fen": limit, "drawn_fen": 0, "available_fen": limit, "frozen": False,
                "line_ends_on": loan.line_ends_on, "next_review_on": loan.next_review_on}
    view = lines.state(loan, business_date())
    return {"limit_fen": view["limit_fen"], "drawn_fen": view["drawn_fen"],
            "available_fen": view["available_fen"], "frozen": bool(view["frozen"]),
            "line_ends_on": view["ends_on"], "next_review_on": view["next_review_on"]}


# --- the loan as its readers see it ------------------------------------------------------------

def _installment_view(row: Installment, today: date) -> dict[str, Any]:
    status = "paid" if row.paid_on else "overdue" if row.due_date < today else "upcoming"
    return {"seq": row.seq, "due_date": row.due_date, "principal_due_fen": row.principal_due_fen,
            "interest_due_fen": row.interest_due_fen,
            "total_due_fen": row.principal_due_fen + row.interest_due_fen,
            "principal_paid_fen": row.principal_paid_fen,
            "interest_paid_fen": row.interest_paid_fen, "paid_on": row.paid_on,
            "status": status}


def _next_due_view(due: NextDue | None) -> dict[str, Any] | None:
    if due is None:
        return None
    return {"seq": due.seq, "due_date": due.due_date, "amount_fen": due.amount_fen,
            "principal_fen": due.principal_fen, "interest_fen": due.interest_fen}


def _summary(loan: Loan, related: dict[str, Any], due: NextDue | None) -> dict[str, Any]:
    return {
        "public_id": loan.public_id, "application_id": related["applications"][loan.application_id],
        "farmer": loan.farmer, "village": related["villages"][loan.village_id],
        "product": related["products"][loan.product_id], "kind": loan.kind,
        "status": loan.status, "repayment_type": loan.repayment_type, "crop": loan.crop,
        "principal_fen": loan.principal_fen, "annual_rate_bp": loan.annual_rate_bp,
        "accepted_at": loan.accepted_at, "disbursed_on": loan.disbursed_on,
        "maturity_date": loan.maturity_date, "dpd": loan.dpd, "bucket": loan.bucket,
        "balances": {
            "principal_outstanding_fen": loan.principal_outstanding_fen,
            "interest_outstanding_fen": loan.interest_outstanding_fen,
            "penalty_outstanding_fen": loan.penalty_outstanding_fen,
            "overpaid_fen": loan.overpaid_fen,
            "total_outstanding_fen": loan.principal_outstanding_fen
            + loan.interest_outstanding_fen + loan.penalty_outstanding_fen},
        "next_due": _next_due_view(due), "line": _line_view(loan),
    }


def _related(session: DbSession, loans: list[Loan]) -> dict[str, Any]:
    applications = {row.id: row.public_id for row in by_id(
        session, Application, {loan.application_id for loan in loans}).values()}
    return {"applications": applications,
            "villages": by_id(session, Village, {loan.village_id for loan in loans}),
            "products": by_id(session, LoanProduct, {loan.product_id for loan in loans})}


def summaries(session: DbSession, loans: list[Loan]) -> list[dict[str, Any]]:
    """Loans as a list shows them (a page's related rows in one query each)."""
    related = _related(session, loans)
    dues = next_dues(session, [loan.id for loan in loans])
    return [_summary(loan, related, dues.get(loan.id)) for loan in loans]


def detail(session: DbSession, loan: Loan) -> dict[str, Any]:
    """One loan: balances, the schedule with what is paid, what is due next, delinquency, and
    for a line its limit, what is drawn and what is available."""
    view = _summary(loan, _related(session, [loan]), next_due(session, loan))
    today = business_date()
    view.update({
        "term_months": loan.term_months, "grace_months": loan.grace_months,
        "penalty_rate_bp": loan.penalty_rate_bp, "day_count": loan.day_count,
        "settled_on": loan.settled_on, "relief_paused": loan.relief_paused,
        "installments": [_installment_view(row, today) for row in loan.installments]})
    return view


def page(session: DbSession, stmt: sa.Select[Any], args: dict[str, Any]) -> dict[str, Any]:
    """A cursor page of ``stmt`` (loans), oldest first, with filters from ``args``."""
    for name in ("status", "bucket"):
        if args.get(name):
            stmt = stmt.where(getattr(Loan, name) == args[name])
    if args.get("village_id"):
        stmt = stmt.where(Loan.village_id.in_(
            sa.select(Village.id).where(Village.public_id == args["village_id"])))
    result = paginate(session, stmt.options(selectinload(Loan.farmer)), Loan.public_id, args)
    result["items"] = summaries(session, list(result["items"]))
    return result

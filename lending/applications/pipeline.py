"""From a farmer's phone to a decision: make an application, submit it, decide it.

The "310" path runs in three phases so that the slow part holds no lock:

1. **Read** (:func:`plan_new`, :func:`plan_existing`): check the product, terms, consents and
   the farmer; load the policy in force, the crop reference, the farmer's history and any
   cached registry answers. Reads only (on SQLite a read takes no write lock).
2. **Ask** (:func:`ask_registries`): the land and insurance registries, concurrently, over
   HTTP, with no database transaction open.
3. **Write** (:func:`record_new`, :func:`decide`): the application, the consents given with
   it, the decision with its snapshot, one state change, the assignment for a field check:
   one transaction, committed by the request or the job. A decision the farmer waits for on
   the phone is read there; one made later (a retry, a field check, staff) is also texted.

A registry that fails never lets the policy approve: its answer is missing from the facts
(the policy refers with ``data_source_unavailable``), a retry is scheduled, and as a last guard
an approval with a failed registry is turned into a referral here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app

from core import audit
from core.authz import Principal
from core.db import DbSession, end_read, insert_row, table, utcnow, uuid7
from core.errors import NongdaiError
from core.i18n import _, lazy_gettext
from core.people import services as people
from core.people.models import Consent, Farmer
from lending.applications import notify, states, underwriting
from lending.applications.models import Application, ApplicationParcel, Decision
from lending.products import services as products
from lending.products.models import LoanProduct
from lending.registries import parcels
from lending.registries import service as registries

REQUIRED_CONSENTS = ("credit_decision", "land_registry")
PURPOSES = ("credit_decision", "land_registry", "insurance")
CONSENT_DAYS = 365  # consents given with an application last a year (capped by the setting)


class ConsentRequired(NongdaiError):
    status, code = 422, "consent-required"
    title = lazy_gettext("A consent the decision needs is missing")


@dataclass
class Plan:
    """Everything read before the registries are asked (phase 1), then their answers and the
    policy's result (phase 2)."""

    farmer: Farmer
    product: LoanProduct
    data: dict[str, Any]  # the application as sent (new) or as stored (existing)
    case: underwriting.Case
    application: Application | None = None
    grant: tuple[str, ...] = ()  # consents to record with a new application
    cached: Any = None
    lookup: Any = field(default=None)
    result: underwriting.Result | None = None
    fresh: bool = False  # the application was inserted by this transaction


# --- phase 1: read ----------------------------------------------------------------------------

def _active_consents(session: DbSession, farmer_id: int) -> set[str]:
    """The purposes the farmer has a consent in force for: one query."""
    return set(session.scalars(_ACTIVE_CONSENTS, {"farmer_id": farmer_id, "now": utcnow()}))


def _require(consents: set[str]) -> None:
    missing = [p for p in REQUIRED_CONSENTS if p not in consents]
    if missing:
        raise ConsentRequired(
            _("Agree to let the bank use these records first: %(purposes)s",
              purposes=", ".join(missing)),
            errors={"consents": [_("Missing: %(purposes)s", purposes=", ".join(missing))]})


def plan_new(session: DbSession, farmer: Farmer, data: dict[str, Any]) -> Plan:
    """Check a new application (product offered, terms in range, consents) and read what its
    decision needs. Raises 4xx problems; writes nothing."""
    county = underwriting.county_of(session, farmer)
    product = products.get_offerable(session, data["product_id"], county, data["crop"])
    products.check_terms(product, data["amount_fen"], data["term_months"])
    active = _active_consents(session, farmer.id)
    granting = tuple(sorted(set(data.get("consents", ())) - active))
    consents = active | set(granting)
    if not data.get("draft"):
        _require(consents)
    case = underwriting.read_case(session, farmer=farmer, product=product, data=data,
                                  consents=consents, at=utcnow(), county=county)
    plan = Plan(farmer=farmer, product=product, data=data, case=case, grant=granting)
    if not data.get("draft"):
        plan.cached = underwriting.cached(session, case)
    return plan


def plan_existing(session: DbSession, application: Application) -> Plan:
    """Read what deciding ``application`` (draft, referred, or back from a field check)
    needs. Consents are read again: a consent revoked since stops the next query."""
    farmer = application.farmer
    consents = _active_consents(session, farmer.id)
    _require(consents)
    data = underwriting.data_of(application)
    case = underwriting.read_case(session, farmer=farmer, product=application.product,
                                  data=data, consents=consents,
                                  at=application.submitted_at or utcnow(),
                                  application=application)
    plan = Plan(farmer=farmer, product=application.product, data=data, case=case,
                application=application)
    plan.cached = underwriting.cached(session, case)
    return plan


def land_records(session: DbSession, farmer: Farmer) -> list[dict[str, Any]]:
    """The farmer's registered certificates and parcels (the land registry, or its cache)."""
    if "land_registry" not in _active_consents(session, farmer.id):
        raise ConsentRequired(_("Agree to let the bank use these records first: "
                                "%(purposes)s", purposes="land_registry"))
    found = registries.lookup(session, farmer.id_number_hash, (), land=True, insurance=False)
    if "land" in found.failures:
        raise found.failures["land"]
    parcels.remember_lookup(session, farmer, found)
    today = utcnow().date()
    return [{"number": c.number, "parcels": [
        {"code": p.code, "area_mu": p.area_mu, "land_class": p.land_class,
         "village_code": p.village_code, "contract_end": p.contract_end,
         "pledged": any(pl.active and pl.start <= today <= pl.end for pl in p.pledges)}
        for p in c.parcels]} for c in (found.land.certificates if found.land else ())]


# --- phase 2: ask -----------------------------------------------------------------------------

def ask_registries(plan: Plan) -> Plan:
    """Query what the cache did not answer, land and insurance concurrently, then run the
    policy on the answers. No database: on SQLite no lock is held meanwhile."""
    if plan.cached is None:
        return plan
    config = registries.config_from(current_app.config)
    lookup = underwriting.fetch(config, plan.case, plan.cached)
    return replace(plan, lookup=lookup, result=underwriting.evaluate(plan.case, lookup))


# --- phase 3: write ---------------------------------------------------------------------------

def record_new(session: DbSession, plan: Plan, by: Principal) -> tuple[Application,
                                                                       Decision | None]:
    """Write the application (a draft, or submitted and decided) with the consents given.

    A submitted application is born ``submitted`` (its first state after the draft it never
    was) and moves once, to where its decision sends it.
    """
    farmer = plan.farmer
    end_read(session, farmer, plan.product, *plan.case.keep)  # the writing starts here
    for purpose in plan.grant:
        people.grant_consent(session, farmer, by, purpose=purpose, valid_days=min(
            CONSENT_DAYS, int(current_app.config["NONGDAI_CONSENT_MAX_DAYS"])),
            evidence="application")
    data, draft = plan.data, bool(plan.data.get("draft"))
    now = utcnow()
    application = insert_row(session, Application, {
        "public_id": uuid7(), "created_at": now, "farmer_id": farmer.id,
        "village_id": farmer.village_id, "product_id": plan.product.id,
        "policy_id": None if draft else plan.case.policy.id,
        "state": states.DRAFT if draft else states.SUBMITTED, "state_changed_at": now,
        "amount_fen": data["amount_fen"], "term_months": data["term_months"],
        "purpose": data["purpose"], "crop": data["crop"],
        "terms": products.terms_snapshot(plan.product),
        "submitted_at": None if draft else now, "decided_at": None,
        "approved_amount_fen": None, "retry_at": None, "info_requested": False,
        "recommended_by_id": None, "recommendation": None})
    session.connection().execute(_INSERT_PARCELS, [
        {**parcel, "application_id": application.id, "public_id": uuid7(), "created_at": now}
        for parcel in data["parcels"]])
    audit.record(session, "application.create", application, actor=by.ref, summary={
        "product": plan.product.code, "amount_fen": application.amount_fen,
        "parcels": len(data["parcels"]), "state": application.state})
    if draft:
        return application, None
    plan.application, plan.fresh = application, True
    return application, decide(session, plan, application, watching=True)


def submit(session: DbSession, plan: Plan, application: Application, *,
           actor: str) -> Decision:
    """Move a draft to ``submitted``, pin the policy in force, and decide."""
    end_read(session, application, *plan.case.keep)  # the writing starts here
    states.move(session, application, states.SUBMITTED, actor=actor,
                values={"submitted_at": utcnow(), "policy_id": plan.case.policy.id})
    return decide(session, plan, application, watching=True)


def decide(session: DbSession, plan: Plan, application: Application, *,
           watching: bool = False) -> Decision:
    """Store the policy's result on the submitted ``application`` (evaluated now unless phase
    2 did); move it to where the outcome sends it; tell the farmer by SMS, unless the farmer is
    ``watching``: decided in the farmer's own request, the answer is on the phone's screen."""
    if plan.lookup is not None:
        registries.remember(session, plan.lookup)
        parcels.remember_lookup(session, plan.farmer, plan.lookup)
    result = plan.result or underwriting.evaluate(plan.case, plan.lookup)
    now = utcnow()
    decision = insert_row(session, Decision, {
        "public_id": uuid7(), "created_at": now, "application_id": application.id,
        "policy_id": plan.case.policy.id, "policy_version": plan.case.policy.version,
        "outcome": result.outcome, "limit_fen": result.limit_fen,
        "amount_fen": result.amount_fen, "score": result.score, "factors": result.factors,
        "reasons": result.reasons, "snapshot": result.snapshot, "decided_at": now})
    audit.record(session, "decision.made", decision, actor="system", summary={
        "application_id": str(application.public_id), "outcome": result.outcome,
        "policy_version": decision.policy_version, "score": result.score,
        "reasons": [r["code"] for r in result.reasons]})
    _follow(session, application, decision, failed=result.unavailable,
            tell=_quiet if watching else notify.tell, unassigned=plan.fresh)
    return decision


def _quiet(_session: DbSession, _application: Application, _outcome: str) -> None:
    """No SMS: the farmer reads the outcome in the answer to their own request."""


def _follow(session: DbSession, application: Application, decision: Decision, *,
            failed: list[str], tell: Callable[[DbSession, Application, str], None],
            unassigned: bool = False) -> None:
    """One state change (with what it settles) and the farmer's SMS. ``unassigned``: see
    :func:`states.move`."""
    from lending.applications import fieldwork  # noqa: PLC0415 - fieldwork resumes us

    decided = {"retry_at": None, "decided_at": decision.decided_at}

    def move(target: str, values: dict[str, Any]) -> None:
        states.move(session, application, target, actor="system", values=values,
                    unassigned=unassigned)

    if decision.outcome == "approve":
        move(states.APPROVED, {**decided, "approved_amount_fen": decision.amount_fen})
        tell(session, application, "approved")
    elif decision.outcome == "decline":
        move(states.DECLINED, decided)
        tell(session, application, "declined")
    elif decision.outcome == "field_check":
        move(states.AWAITING_FIELD_CHECK, {"retry_at": None})
        fieldwork.open_assignment(session, application)
        tell(session, application, "awaiting_field_check")
    else:
        retry_at = None
        if failed:
            minutes = int(current_app.config["NONGDAI_REGISTRY_RETRY_MINUTES"])
            retry_at = utcnow() + timedelta(minutes=minutes)
        move(states.UNDER_REVIEW, {"retry_at": retry_at})
        tell(session, application, "under_review")


def withdraw(session: DbSession, application: Application, *, actor: str) -> Application:
    """The farmer withdraws: the case closes and its open field work is cancelled."""
    from lending.applications import fieldwork  # noqa: PLC0415

    states.move(session, application, states.WITHDRAWN, actor=actor, values={"retry_at": None})
    fieldwork.cancel_assignments(session, application)
    return application


def expire(session: DbSession, application: Application) -> Application:
    """Close a case that waited too long (the expiry job)."""
    from lending.applications import fieldwork  # noqa: PLC0415

    states.move(session, application, states.EXPIRED, actor="system", values={"retry_at": None})
    fieldwork.cancel_assignments(session, application)
    return application


# --- deciding again ---------------------------------------------------------------------------

def redecide(session: DbSession, application: Application, *, actor: str) -> Decision:
    """Decide an application again in the caller's transaction (a job, a field check): back
    to ``submitted``, then the three phases. Registry calls happen inside the transaction
    here: these paths are not the farmer's 310 second."""
    plan = plan_existing(session, application)
    plan = ask_registries(plan)
    states.move(session, application, states.SUBMITTED, actor=actor)
    return decide(session, plan, application)


def resume(session: DbSession, application: Application, *, actor: str) -> Decision:
    """A field check arrived for an application waiting for one: decide it now."""
    return redecide(session, application, actor=actor)


def due_for_retry(at: datetime) -> sa.Select[Any]:
    """Applications referred because a registry was down, whose retry time has come."""
    return (sa.select(Application.id)
            .where(Application.state == states.UNDER_REVIEW, Application.retry_at <= at)
            .order_by(Application.retry_at))


_INSERT_PARCELS = sa.insert(table(ApplicationParcel))
"""The declared parcels, a Core executemany (no ORM bulk-insert machinery)."""
_now = sa.bindparam("now", type_=Consent.granted_at.type)
_ACTIVE_CONSENTS = sa.select(Consent.purpose).distinct().where(
    Consent.farmer_id == sa.bindparam("farmer_id"), Consent.purpose.in_(PURPOSES),
    Consent.granted_at <= _now, Consent.expires_at > _now,
    sa.or_(Consent.revoked_at.is_(None), Consent.revoked_at > _now))
"""The purposes a farmer has a consent in force for (built once; a request binds)."""

"""The farmer's side of an application: apply, follow it, withdraw it.

Thin views: the work is in :mod:`lending.applications.pipeline`. A coordinator sees the
applications of their villages and staff see all (read only here; staff act through the
review API).
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from core.api import Blueprint, paginate, raises
from core.authz import access, current_principal, get_visible, visible
from core.db import begin_read, db
from core.errors import NotFound
from core.idempotency import idempotent
from core.people.models import Farmer
from lending.applications import pipeline, presenting, schemas, states
from lending.applications.models import Application, Decision
from lending.policy.services import NoPolicyInForce
from lending.products.services import ProductNotOffered, TermsOutOfRange
from lending.registries.types import RegistryUnavailable

blp = Blueprint("applications", __name__, description="Loan applications from farmers' phones")


def _own(application_id: uuid.UUID) -> Application:
    return get_visible(db.session, Application, application_id)


@blp.route("/applications", methods=["POST"])
@access("farmer")
@raises(NotFound, ProductNotOffered, TermsOutOfRange, pipeline.ConsentRequired,
        NoPolicyInForce)
@idempotent
@blp.arguments(schemas.ApplicationCreateSchema)
@blp.response(201, schemas.LoanApplicationSchema)
def create_application(data: dict[str, Any]) -> dict[str, Any]:
    """Apply for a loan: decided at once when the case is clear (approve or decline), else
    referred to the bank or sent for a coordinator's field check; ``draft`` keeps it unsent."""
    principal = current_principal()
    begin_read(db.session)  # checks and reads first; the write lock waits for the writing
    farmer = db.session.get(Farmer, principal.id)
    if farmer is None or not farmer.is_active:
        raise NotFound()
    plan = pipeline.ask_registries(pipeline.plan_new(db.session, farmer, data))
    application, decision = pipeline.record_new(db.session, plan, principal)
    return presenting.present(application, decision, parcels=plan.data["parcels"])


@blp.route("/applications", methods=["GET"])
@access("farmer", "coordinator", "staff")
@blp.arguments(schemas.ApplicationListArgs, location="query")
@blp.response(200, schemas.ApplicationPage)
def list_applications(args: dict[str, Any]) -> dict[str, Any]:
    """A farmer's own applications; a coordinator's villages'; every one for staff."""
    stmt = sa.select(Application).where(visible(Application))
    if args.get("state"):
        stmt = stmt.where(Application.state == args["state"])
    if args.get("policy_version"):
        stmt = stmt.where(Application.id.in_(sa.select(Decision.application_id).where(
            Decision.policy_version == args["policy_version"])))
    page = paginate(db.session, stmt, Application.public_id, args)
    page["items"] = presenting.present_many(db.session, page["items"])
    return page


@blp.route("/applications/<uuid:application_id>", methods=["GET"])
@access("farmer", "coordinator", "staff")
@blp.response(200, schemas.LoanApplicationSchema)
def get_application(application_id: uuid.UUID) -> dict[str, Any]:
    """One application with its status and latest decision explained."""
    return presenting.present(_own(application_id))


@blp.route("/applications/<uuid:application_id>/submit", methods=["POST"])
@access("farmer")
@raises(states.IllegalTransition, pipeline.ConsentRequired)
@blp.response(200, schemas.LoanApplicationSchema)
def submit_application(application_id: uuid.UUID) -> dict[str, Any]:
    """Submit a draft for a decision (safe to repeat: a submitted one answers 409)."""
    begin_read(db.session)  # the checks and the registries first, the writing after
    application = _own(application_id)
    if application.state != states.DRAFT:
        raise states.IllegalTransition()
    plan = pipeline.ask_registries(pipeline.plan_existing(db.session, application))
    decision = pipeline.submit(db.session, plan, application, actor=current_principal().ref)
    return presenting.present(application, decision)


@blp.route("/applications/<uuid:application_id>/withdraw", methods=["POST"])
@access("farmer")
@raises(states.IllegalTransition)
@blp.response(200, schemas.LoanApplicationSchema)
def withdraw_application(application_id: uuid.UUID) -> dict[str, Any]:
    """Withdraw an application that is not final yet (an approved offer too)."""
    application = _own(application_id)
    pipeline.withdraw(db.session, application, actor=current_principal().ref)
    return presenting.present(application)


@blp.route("/land-records", methods=["GET"])
@access("farmer")
@raises(pipeline.ConsentRequired, RegistryUnavailable)
@blp.response(200, schemas.LandRecordsSchema)
def my_land_records() -> dict[str, Any]:
    """The farmer's own certificates and parcels as the land registry holds them, to choose
    the parcels an application rests on (needs the ``land_registry`` consent)."""
    farmer = db.session.get(Farmer, current_principal().id)
    if farmer is None:
        raise NotFound()
    return {"certificates": pipeline.land_records(db.session, farmer)}

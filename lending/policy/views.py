"""HTTP API for the credit policy: its versions (admins publish, staff read) and the crop
calendar of the version in force (anyone signed in).

Versions are addressed by public id like every resource; ``?version=2026.1`` finds one by the
name every decision records. There is no PATCH or DELETE: a change is a new version.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from core.api import Blueprint, paginate, raises
from core.authz import access, current_principal
from core.db import db
from core.errors import NotFound
from core.i18n import _
from core.idempotency import idempotent
from lending.policy import schemas, services
from lending.policy.engine import PolicyError
from lending.policy.models import CreditPolicy, CropReference

blp = Blueprint("credit_policies", __name__,
                description="Credit policy versions (JDM decision models) and crop calendars")


@blp.route("/credit-policies", methods=["POST"])
@access("admin")
@raises(PolicyError, services.PolicyVersionExists)
@idempotent
@blp.arguments(schemas.CreditPolicyCreateSchema)
@blp.response(201, schemas.CreditPolicySchema)
def create_policy(data: dict[str, Any]) -> CreditPolicy:
    """Publish a new credit policy version with its crop table.

    The decision model must compile with zen-engine, evaluate the smoke cases and emit only
    registered reason codes (422 otherwise). It applies to applications submitted from
    ``effective_from`` on.
    """
    return services.create_policy_version(db.session, created_by=current_principal().ref,
                                          **data)


@blp.route("/credit-policies", methods=["GET"])
@access("staff")
@blp.arguments(schemas.CreditPolicyListArgs, location="query")
@blp.response(200, schemas.CreditPolicyPage)
def list_policies(args: dict[str, Any]) -> dict[str, Any]:
    """List the credit policy versions, oldest first, or find one by its version name."""
    stmt = sa.select(CreditPolicy)
    if args.get("version"):
        stmt = stmt.where(CreditPolicy.version == args["version"])
    return paginate(db.session, stmt, CreditPolicy.public_id, args)


@blp.route("/credit-policies/<uuid:policy_id>", methods=["GET"])
@access("staff")
@raises(NotFound)
@blp.response(200, schemas.CreditPolicySchema)
def get_policy(policy_id: uuid.UUID) -> CreditPolicy:
    """Read one version: its decision model (JDM) and its crop table."""
    policy = db.session.scalars(sa.select(CreditPolicy).where(
        CreditPolicy.public_id == policy_id)).first()
    if policy is None:
        raise NotFound(_("No credit policy with that id."))
    return policy


@blp.route("/crops", methods=["GET"])
@access()
@raises(services.NoPolicyInForce)
@blp.arguments(schemas.CropCalendarArgs, location="query")
@blp.response(200, schemas.CropCalendarSchema)
def crop_calendar(args: dict[str, Any]) -> dict[str, Any]:
    """The crop calendar of the policy in force: yields, prices, planting and harvest windows."""
    policy = services.current_policy(db.session)
    stmt = sa.select(CropReference).where(CropReference.policy_id == policy.id)
    if args.get("county_code"):
        stmt = stmt.where(CropReference.county_code == args["county_code"])
    if args.get("crop"):
        stmt = stmt.where(CropReference.crop == args["crop"])
    rows = db.session.scalars(stmt.order_by(CropReference.crop, CropReference.county_code))
    return {"policy_version": policy.version, "effective_from": policy.effective_from,
            "crops": list(rows)}

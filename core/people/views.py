"""HTTP API for people: farmers (household profiles), their consents, coordinators and staff.

Farmers are registered by coordinators (villages of their station) and staff; a farmer sees
only themselves. Coordinators and staff accounts are managed by admins. Objects outside the
caller's scope read as 404, whether or not they exist.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import selectinload

from core import ratelimit
from core.api import Blueprint, PageArgs, paginate, raises
from core.authz import access, current_principal, get_visible, visible
from core.db import begin_read, db
from core.errors import NotFound, RateLimited
from core.idempotency import idempotent
from core.people import schemas, services
from core.people.models import Consent, Coordinator, Farmer, Staff
from core.places.models import Station, Village

blp = Blueprint("people", __name__, description="Farmers, consents, coordinators, staff")


# --- farmers --------------------------------------------------------------------------------

def _id_number_answers() -> tuple[str, int, int]:
    """The caller's bucket for answers that tell whether an ID number is registered (a lookup,
    or a registration refused as a duplicate): bucket, limit, window."""
    limit = int(current_app.config["NONGDAI_LOOKUP_PER_USER_PER_HOUR"])
    return ratelimit.key("farmer.lookup", current_principal().ref), limit, 3600


@blp.route("/farmers", methods=["POST"])
@access("coordinator", "staff")
@raises(NotFound, services.FarmerExists, services.PhoneTaken, RateLimited)
@idempotent
@blp.arguments(schemas.FarmerCreateSchema)
@blp.response(201, schemas.FarmerSchema)
def create_farmer(data: dict[str, Any]) -> Farmer:
    """Register a farming household's borrower in one of the caller's villages."""
    begin_read(db.session)  # the checks are reads; the write lock waits for the write
    village = get_visible(db.session, Village, data.pop("village_id"))
    # "Already registered" tells whether an ID number exists: rationed like a lookup.
    with ratelimit.failures(*_id_number_answers(), services.FarmerExists, check_first=False):
        return services.create_farmer(db.session, village=village, **data)


@blp.route("/farmers", methods=["GET"])
@access("coordinator", "staff")
@blp.arguments(schemas.FarmerListArgs, location="query")
@blp.response(200, schemas.FarmerPage)
def list_farmers(args: dict[str, Any]) -> dict[str, Any]:
    """List the farmers in the caller's villages, optionally of one village."""
    stmt = sa.select(Farmer).where(visible(Farmer)).options(selectinload(Farmer.village))
    if args.get("village_id"):
        stmt = stmt.join(Farmer.village).where(Village.public_id == args["village_id"])
    return paginate(db.session, stmt, Farmer.public_id, args)


@blp.route("/farmers/me", methods=["GET"])
@access("farmer")
@blp.response(200, schemas.FarmerSchema)
def get_own_profile() -> Farmer:
    """Read the signed-in farmer's own profile."""
    return get_visible(db.session, Farmer, current_principal().public_id)


@blp.route("/farmers/lookup", methods=["POST"])
@access("coordinator", "staff")
@raises(NotFound, RateLimited)
@blp.arguments(schemas.FarmerLookupSchema)
@blp.response(200, schemas.FarmerSchema)
def lookup_farmer(data: dict[str, Any]) -> Farmer:
    """Find a farmer in the caller's scope by ID number (in the body, never in a URL).

    Limited to NONGDAI_LOOKUP_PER_USER_PER_HOUR lookups per caller.
    """
    ratelimit.hit(*_id_number_answers())
    return services.lookup_farmer(db.session, data["id_number"], visible(Farmer))


@blp.route("/farmers/<uuid:farmer_id>", methods=["GET"])
@access()
@blp.response(200, schemas.FarmerSchema)
def get_farmer(farmer_id: uuid.UUID) -> Farmer:
    """Read one farmer (404 when out of the caller's scope, whether or not it exists)."""
    return get_visible(db.session, Farmer, farmer_id)


@blp.route("/farmers/<uuid:farmer_id>", methods=["PATCH"])
@access("coordinator", "staff")
@raises(services.PhoneTaken)
@blp.arguments(schemas.FarmerUpdateSchema)
@blp.response(200, schemas.FarmerSchema)
def update_farmer(data: dict[str, Any], farmer_id: uuid.UUID) -> Farmer:
    """Change a farmer's name or phone number."""
    farmer = get_visible(db.session, Farmer, farmer_id)
    return services.update_farmer(db.session, farmer, **data)


# --- consents -------------------------------------------------------------------------------

@blp.route("/farmers/<uuid:farmer_id>/consents", methods=["POST"])
@access("farmer", "coordinator", "staff")
@idempotent
@blp.arguments(schemas.ConsentCreateSchema)
@blp.response(201, schemas.ConsentSchema)
def grant_consent(data: dict[str, Any], farmer_id: uuid.UUID) -> Consent:
    """Record a farmer's consent for one purpose, valid for a number of days.

    Given by the farmer in the app (channel ``app``) or recorded by a coordinator or staff
    member with its evidence (channel ``coordinator``).
    """
    farmer = get_visible(db.session, Farmer, farmer_id)
    return services.grant_consent(db.session, farmer, current_principal(), **data)


@blp.route("/farmers/<uuid:farmer_id>/consents", methods=["GET"])
@access()
@blp.arguments(PageArgs, location="query")
@blp.response(200, schemas.ConsentPage)
def list_consents(args: dict[str, Any], farmer_id: uuid.UUID) -> dict[str, Any]:
    """List a farmer's consents, whatever their status."""
    farmer = get_visible(db.session, Farmer, farmer_id)
    stmt = sa.select(Consent).where(Consent.farmer_id == farmer.id, visible(Consent))
    return paginate(db.session, stmt.options(selectinload(Consent.farmer)), Consent.public_id,
                    args)


@blp.route("/consents/<uuid:consent_id>/revoke", methods=["POST"])
@access("farmer", "admin")
@raises(services.ConsentRevoked)
@blp.response(200, schemas.ConsentSchema)
def revoke_consent(consent_id: uuid.UUID) -> Consent:
    """Revoke a consent from now on (the farmer's own, or any for an admin)."""
    consent = get_visible(db.session, Consent, consent_id)
    return services.revoke_consent(db.session, consent)


# --- coordinators ---------------------------------------------------------------------------

@blp.route("/coordinators", methods=["POST"])
@access("admin")
@raises(NotFound, services.UsernameTaken)
@idempotent
@blp.arguments(schemas.CoordinatorCreateSchema)
@blp.response(201, schemas.CoordinatorSchema)
def create_coordinator(data: dict[str, Any]) -> Coordinator:
    """Open a coordinator's account at a station (they sign in with the password)."""
    station = get_visible(db.session, Station, data.pop("station_id"))
    return services.create_coordinator(db.session, station=station, **data)


@blp.route("/coordinators", methods=["GET"])
@access("admin")
@blp.arguments(schemas.CoordinatorListArgs, location="query")
@blp.response(200, schemas.CoordinatorPage)
def list_coordinators(args: dict[str, Any]) -> dict[str, Any]:
    """List coordinators, optionally of one station."""
    stmt = sa.select(Coordinator).where(visible(Coordinator)).options(
        selectinload(Coordinator.station))
    if args.get("station_id"):
        stmt = stmt.join(Coordinator.station).where(Station.public_id == args["station_id"])
    return paginate(db.session, stmt, Coordinator.public_id, args)


@blp.route("/coordinators/<uuid:coordinator_id>", methods=["GET"])
@access("admin")
@blp.response(200, schemas.CoordinatorSchema)
def get_coordinator(coordinator_id: uuid.UUID) -> Coordinator:
    """Read one coordinator's account."""
    return get_visible(db.session, Coordinator, coordinator_id)


@blp.route("/coordinators/<uuid:coordinator_id>", methods=["PATCH"])
@access("admin")
@blp.arguments(schemas.CoordinatorUpdateSchema)
@blp.response(200, schemas.CoordinatorSchema)
def update_coordinator(data: dict[str, Any], coordinator_id: uuid.UUID) -> Coordinator:
    """Change a coordinator's name, phone or station, or deactivate the account."""
    coordinator = get_visible(db.session, Coordinator, coordinator_id)
    if "station_id" in data:
        data["station"] = get_visible(db.session, Station, data.pop("station_id"))
    return services.update_coordinator(db.session, coordinator, **data)


# --- staff ----------------------------------------------------------------------------------

@blp.route("/staff", methods=["POST"])
@access("admin")
@raises(services.UsernameTaken)
@idempotent
@blp.arguments(schemas.StaffCreateSchema)
@blp.response(201, schemas.StaffSchema)
def create_staff(data: dict[str, Any]) -> Staff:
    """Open a bank staff member's account with one or more roles."""
    return services.create_staff(db.session, **data)


@blp.route("/staff", methods=["GET"])
@access("admin")
@blp.arguments(PageArgs, location="query")
@blp.response(200, schemas.StaffPage)
def list_staff(args: dict[str, Any]) -> dict[str, Any]:
    """List bank staff accounts."""
    return paginate(db.session, sa.select(Staff).where(visible(Staff)), Staff.public_id, args)


@blp.route("/staff/<uuid:staff_id>", methods=["GET"])
@access("admin")
@blp.response(200, schemas.StaffSchema)
def get_staff(staff_id: uuid.UUID) -> Staff:
    """Read one staff member's account."""
    return get_visible(db.session, Staff, staff_id)


@blp.route("/staff/<uuid:staff_id>", methods=["PATCH"])
@access("admin")
@raises(services.SelfLockout)
@blp.arguments(schemas.StaffUpdateSchema)
@blp.response(200, schemas.StaffSchema)
def update_staff(data: dict[str, Any], staff_id: uuid.UUID) -> Staff:
    """Change a staff member's name or roles, or deactivate the account.

    An admin cannot remove their own admin role or deactivate themselves.
    """
    staff = get_visible(db.session, Staff, staff_id)
    return services.update_staff(db.session, staff, current_principal(), **data)

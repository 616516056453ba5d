"""HTTP API for places: admins manage them; everyone signed in reads what their scope allows.

Staff see every place; a coordinator its station and the villages (and their townships and
counties) that station serves; a farmer their own village. Out of scope reads as 404.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from core.api import Blueprint, PageArgs, paginate, raises
from core.authz import access, get_visible, visible
from core.db import db
from core.errors import NotFound
from core.i18n import _
from core.idempotency import idempotent
from core.places import schemas, services
from core.places.models import County, Station, Township, Village

blp = Blueprint("places", __name__, description="Counties, townships, villages, stations")


def load_villages(public_ids: list[uuid.UUID]) -> list[Village]:
    """The visible villages with these ids, or 404 when any is missing or out of scope."""
    wanted = set(public_ids)
    stmt = sa.select(Village).where(Village.public_id.in_(wanted), visible(Village))
    villages = list(db.session.scalars(stmt.order_by(Village.code)))
    if len(villages) != len(wanted):
        raise NotFound(_("No village with one of those ids"))
    return villages


# --- counties -------------------------------------------------------------------------------

@blp.route("/counties", methods=["POST"])
@access("admin")
@raises(services.CountyExists)
@idempotent
@blp.arguments(schemas.CountyCreateSchema)
@blp.response(201, schemas.CountySchema)
def create_county(data: dict[str, Any]) -> County:
    """Register a county by its 6-digit division code."""
    return services.create_county(db.session, **data)


@blp.route("/counties", methods=["GET"])
@access()
@blp.arguments(PageArgs, location="query")
@blp.response(200, schemas.CountyPage)
def list_counties(args: dict[str, Any]) -> dict[str, Any]:
    """List the counties in the caller's scope, a page at a time."""
    stmt = sa.select(County).where(visible(County))
    return paginate(db.session, stmt, County.public_id, args)


@blp.route("/counties/<uuid:county_id>", methods=["GET"])
@access()
@blp.response(200, schemas.CountySchema)
def get_county(county_id: uuid.UUID) -> County:
    """Read one county (404 when it is out of the caller's scope)."""
    return get_visible(db.session, County, county_id)


# --- townships ------------------------------------------------------------------------------

@blp.route("/townships", methods=["POST"])
@access("admin")
@raises(services.TownshipExists, services.TownshipCodeMismatch)
@idempotent
@blp.arguments(schemas.TownshipCreateSchema)
@blp.response(201, schemas.TownshipSchema)
def create_township(data: dict[str, Any]) -> Township:
    """Register a township; the first 6 digits of its code name its county."""
    return services.create_township(db.session, **data)


@blp.route("/townships", methods=["GET"])
@access()
@blp.arguments(schemas.TownshipListArgs, location="query")
@blp.response(200, schemas.TownshipPage)
def list_townships(args: dict[str, Any]) -> dict[str, Any]:
    """List the townships in the caller's scope, optionally of one county."""
    stmt = sa.select(Township).where(visible(Township)).options(selectinload(Township.county))
    if args.get("county_id"):
        stmt = stmt.join(Township.county).where(County.public_id == args["county_id"])
    return paginate(db.session, stmt, Township.public_id, args)


@blp.route("/townships/<uuid:township_id>", methods=["GET"])
@access()
@blp.response(200, schemas.TownshipSchema)
def get_township(township_id: uuid.UUID) -> Township:
    """Read one township (404 when it is out of the caller's scope)."""
    return get_visible(db.session, Township, township_id)


# --- villages -------------------------------------------------------------------------------

@blp.route("/villages", methods=["POST"])
@access("admin")
@raises(services.VillageExists, services.VillageCodeMismatch)
@idempotent
@blp.arguments(schemas.VillageCreateSchema)
@blp.response(201, schemas.VillageSchema)
def create_village(data: dict[str, Any]) -> Village:
    """Register a village; the first 9 digits of its code name its township.

    Coordinators see a new village only once it is attached to their station.
    """
    return services.create_village(db.session, **data)


@blp.route("/villages", methods=["GET"])
@access()
@blp.arguments(schemas.VillageListArgs, location="query")
@blp.response(200, schemas.VillagePage)
def list_villages(args: dict[str, Any]) -> dict[str, Any]:
    """List the villages in the caller's scope, optionally of one township."""
    stmt = sa.select(Village).where(visible(Village)).options(selectinload(Village.township))
    if args.get("township_id"):
        stmt = stmt.join(Village.township).where(Township.public_id == args["township_id"])
    return paginate(db.session, stmt, Village.public_id, args)


@blp.route("/villages/<uuid:village_id>", methods=["GET"])
@access()
@blp.response(200, schemas.VillageSchema)
def get_village(village_id: uuid.UUID) -> Village:
    """Read one village (404 when it is out of the caller's scope)."""
    return get_visible(db.session, Village, village_id)


@blp.route("/villages/<uuid:village_id>", methods=["PATCH"])
@access("admin")
@blp.arguments(schemas.VillageUpdateSchema)
@blp.response(200, schemas.VillageSchema)
def update_village(data: dict[str, Any], village_id: uuid.UUID) -> Village:
    """Rename a village (its code is fixed)."""
    village = get_visible(db.session, Village, village_id)
    return services.update_village(db.session, village, **data)


# --- stations -------------------------------------------------------------------------------

@blp.route("/stations", methods=["POST"])
@access("admin")
@raises(NotFound, services.VillageOutsideCounty)
@idempotent
@blp.arguments(schemas.StationCreateSchema)
@blp.response(201, schemas.StationSchema)
def create_station(data: dict[str, Any]) -> Station:
    """Open a service station in a township, serving villages of that township's county."""
    township = get_visible(db.session, Township, data["township_id"])
    villages = load_villages(data["village_ids"])
    return services.create_station(db.session, name=data["name"], township=township,
                                   villages=villages)


@blp.route("/stations", methods=["GET"])
@access("coordinator", "staff")
@blp.arguments(schemas.StationListArgs, location="query")
@blp.response(200, schemas.StationPage)
def list_stations(args: dict[str, Any]) -> dict[str, Any]:
    """List the stations in the caller's scope (a coordinator: its own)."""
    stmt = sa.select(Station).where(visible(Station)).options(
        selectinload(Station.township), selectinload(Station.villages))
    if args.get("township_id"):
        stmt = stmt.join(Station.township).where(Township.public_id == args["township_id"])
    return paginate(db.session, stmt, Station.public_id, args)


@blp.route("/stations/<uuid:station_id>", methods=["GET"])
@access("coordinator", "staff")
@blp.response(200, schemas.StationSchema)
def get_station(station_id: uuid.UUID) -> Station:
    """Read one station with the villages it serves."""
    return get_visible(db.session, Station, station_id)


@blp.route("/stations/<uuid:station_id>", methods=["PATCH"])
@access("admin")
@raises(services.VillageOutsideCounty)
@blp.arguments(schemas.StationUpdateSchema)
@blp.response(200, schemas.StationSchema)
def update_station(data: dict[str, Any], station_id: uuid.UUID) -> Station:
    """Rename a station or replace the villages it serves."""
    station = get_visible(db.session, Station, station_id)
    villages = load_villages(data["village_ids"]) if "village_ids" in data else None
    return services.update_station(db.session, station, name=data.get("name"),
                                   villages=villages)

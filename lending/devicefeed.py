"""What lending publishes to coordinators' devices (docs/sync-protocol.md §4): farmers with
their parcels, and field assignments with the application they are about.

``sync`` pages, filters by scope and serves; this module says what an entity looks like on a
device (``load``, by ids, for changes) and lists a scope's entities by id (``snapshot``, for
a first pull), each in two queries per call whatever the page size. The shapes are compact (a
village of 2,000 farmers with 5,000 parcels is pulled in well under 400 KB of gzip): short
keys, no nulls (an absent value is an absent key), no floats, UUIDs and times as text.

``farmer``::

    {"name", "phone", "id_number_masked", "village_id", "identity_status",
     "parcels": [{"certificate", "code", "area_mu": "3.25", "land_class",
                  "lat_e7", "lon_e7", "contract_end": "2057-12-31"}]}

A deactivated farmer is not published: the device gets a tombstone.

``assignment`` (every status: a cancelled or done one still loads, so devices see it close)::

    {"kind", "status", "created_at", "village_id", "farmer_id",
     "application": {"id", "state", "amount_fen", "crop", "term_months", "purpose",
                     "parcels": [{"code", "declared_area_mu": "10.00"}]}}

The change entries come from ORM listeners on :class:`Farmer` and :class:`FieldAssignment`
(``sync.feed.changes.watch``); parcels and application states are written by Core statements
that listeners never see, so :mod:`lending.registries.parcels` and
:func:`lending.applications.states.move` record their changes themselves.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

import sqlalchemy as sa
from flask import Flask

from core.db import DbSession
from core.people.models import Farmer
from core.places.models import Village
from lending.applications.models import Application, ApplicationParcel, FieldAssignment
from lending.registries import parcels
from sync import registry
from sync.feed import changes
from sync.push.records import VERSIONS

FARMER: Final = "farmer"
ASSIGNMENT: Final = "assignment"
Page = list[tuple[uuid.UUID, dict[str, Any]]]


def init_app(app: Flask) -> None:
    """Publish ``farmer`` and ``assignment`` to devices and watch their tables for changes."""
    registry.register_feed(app, FARMER, load_farmers, snapshot_farmers)
    registry.register_feed(app, ASSIGNMENT, load_assignments, snapshot_assignments)
    changes.watch(Farmer, FARMER)  # process-wide and idempotent: many apps in the tests
    changes.watch(FieldAssignment, ASSIGNMENT)


def _text(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, as the protocol writes times."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _after(column: Any, after: uuid.UUID | None) -> sa.ColumnElement[bool]:
    return sa.true() if after is None else column > after


# --- farmers ---------------------------------------------------------------------------------

def _farmers() -> sa.Select[*tuple[Any, ...]]:
    # The version a device's edit (``update_farmer``) names as its base_version: a farmer
    # never edited through sync is at version 1.
    version = sa.func.coalesce(VERSIONS.c.version, 1).label("version")
    return (sa.select(Farmer.id, Farmer.public_id, Farmer.name, Farmer.phone,
                      Farmer.id_number_masked, Farmer.identity_status,
                      Village.public_id.label("village_public_id"), version)
            .join(Village, Village.id == Farmer.village_id)
            .outerjoin(VERSIONS, sa.and_(VERSIONS.c.kind == "farmer",
                                         VERSIONS.c.entity_id == Farmer.public_id))
            .where(Farmer.is_active))


def _farmer_page(session: DbSession, stmt: sa.Select[*tuple[Any, ...]]) -> Page:
    rows = session.execute(stmt).all()
    held = parcels.of_farmers(session, [row.id for row in rows])
    return [(row.public_id, {
        "name": row.name, "phone": row.phone, "id_number_masked": row.id_number_masked,
        "village_id": str(row.village_public_id), "identity_status": row.identity_status,
        "parcels": held.get(row.id, []), "version": int(row.version)}) for row in rows]


def load_farmers(session: DbSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    """The farmers of ``ids`` that are still published (active), as devices see them."""
    if not ids:
        return {}
    return dict(_farmer_page(session, _farmers().where(Farmer.public_id.in_(list(ids)))))


def snapshot_farmers(session: DbSession, village_ids: frozenset[int], after: uuid.UUID | None,
                     limit: int) -> Page:
    """The scope's active farmers after ``after``, by id, ``limit`` at most."""
    if not village_ids:
        return []
    return _farmer_page(session, _farmers().where(
        Farmer.village_id.in_(sorted(village_ids)), _after(Farmer.public_id, after))
        .order_by(Farmer.public_id).limit(limit))


# --- assignments -----------------------------------------------------------------------------

def _assignments() -> sa.Select[*tuple[Any, ...]]:
    return (sa.select(FieldAssignment.public_id, FieldAssignment.kind, FieldAssignment.status,
                      FieldAssignment.created_at, Village.public_id.label("village_public_id"),
                      Farmer.public_id.label("farmer_public_id"),
                      Application.id.label("application_id"),
                      Application.public_id.label("application_public_id"),
                      Application.state, Application.amount_fen, Application.crop,
                      Application.term_months, Application.purpose)
            .join(Application, Application.id == FieldAssignment.application_id)
            .join(Farmer, Farmer.id == Application.farmer_id)
            .join(Village, Village.id == FieldAssignment.village_id))


def _declared(session: DbSession, application_ids: set[int]) -> dict[int, list[dict[str, str]]]:
    """The parcels each application declares, in one query."""
    found: dict[int, list[dict[str, str]]] = {}
    if not application_ids:
        return found
    rows = session.execute(
        sa.select(ApplicationParcel.application_id, ApplicationParcel.parcel_code,
                  ApplicationParcel.declared_area_mu)
        .where(ApplicationParcel.application_id.in_(sorted(application_ids)))
        .order_by(ApplicationParcel.application_id, ApplicationParcel.id))
    for application_id, code, area in rows:
        found.setdefault(application_id, []).append(
            {"code": code, "declared_area_mu": f"{Decimal(area):.2f}"})
    return found


def _assignment_page(session: DbSession, stmt: sa.Select[*tuple[Any, ...]]) -> Page:
    rows = session.execute(stmt).all()
    declared = _declared(session, {row.application_id for row in rows})
    return [(row.public_id, {
        "kind": row.kind, "status": row.status, "created_at": _text(row.created_at),
        "village_id": str(row.village_public_id), "farmer_id": str(row.farmer_public_id),
        "application": {
            "id": str(row.application_public_id), "state": row.state,
            "amount_fen": row.amount_fen, "crop": row.crop, "term_months": row.term_months,
            "purpose": row.purpose, "parcels": declared.get(row.application_id, [])},
    }) for row in rows]


def load_assignments(session: DbSession,
                     ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    """The assignments of ``ids``, whatever their status."""
    if not ids:
        return {}
    return dict(_assignment_page(session, _assignments().where(
        FieldAssignment.public_id.in_(list(ids)))))


def snapshot_assignments(session: DbSession, village_ids: frozenset[int],
                         after: uuid.UUID | None, limit: int) -> Page:
    """The scope's assignments after ``after``, by id, ``limit`` at most."""
    if not village_ids:
        return []
    return _assignment_page(session, _assignments().where(
        FieldAssignment.village_id.in_(sorted(village_ids)),
        _after(FieldAssignment.public_id, after))
        .order_by(FieldAssignment.public_id).limit(limit))

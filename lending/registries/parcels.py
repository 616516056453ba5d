"""The bank's copy of its farmers' registered parcels (:class:`LandParcel`).

Every successful land-registry answer for a farmer is remembered here (:func:`remember`, from
the application pipeline), as is every imported land extract (:func:`from_extracts`), so that
the coordinators' devices can pull each farmer with their parcels (``lending.devicefeed``) and
a field visit's GPS fix can be compared with the registry's location (:func:`locations`)
without asking the registry again. Writes are set-based upserts on the parcel code
(``INSERT ... ON CONFLICT DO UPDATE ... WHERE <something changed>``), so remembering the same
answer twice writes nothing, and a farmer gets a ``farmer`` change in the device feed only when
one of their parcels really changed.

Locations are integers in 1e-7 degrees, the protocol's unit (``docs/sync-protocol.md`` §3.1:
no floats on the wire); areas are exact decimals in mu.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from core.db import DbSession, rowcount, table, utcnow
from core.people.models import Farmer
from lending.registries.models import (
    ExtractCertificate,
    ExtractParcel,
    ExtractPledge,
    LandParcel,
)
from lending.registries.types import LandRecord, Parcel
from sync.feed import changes

if TYPE_CHECKING:
    from lending.registries.service import Lookup

REGISTRY: Final = "registry"
EXTRACT: Final = "extract"
FARMER_KIND: Final = "farmer"  # parcels travel to devices inside their farmer
E7: Final = Decimal(10_000_000)
BATCH: Final = 1_000  # farmer ids per IN list (far below SQLite's parameter limit)
# Columns whose change is news for a device or a decision; ``source`` and ``updated_at``
# follow them, never cause a write on their own.
COMPARED: Final = ("farmer_id", "village_id", "certificate_number", "area_mu", "land_class",
                   "lat_e7", "lon_e7", "contract_end", "pledged")

_table = table(LandParcel)


def e7(degrees: Decimal) -> int:
    """Degrees as an integer number of 1e-7 degrees (about 1 cm), rounded half to even."""
    return int((degrees * E7).to_integral_value(ROUND_HALF_EVEN))


def _pledged(parcel: Parcel, today: date) -> bool:
    return any(p.active and p.start <= today <= p.end for p in parcel.pledges)


def rows_of(farmer: Farmer, record: LandRecord, *, source: str = REGISTRY,
            today: date | None = None) -> list[dict[str, Any]]:
    """The farmer's own parcels of a land answer as ``land_parcels`` rows (one per code:
    a code listed twice keeps its last listing). Certificates held by others are left out."""
    today = today or utcnow().date()
    now = utcnow()
    rows = {parcel.code: {
        "farmer_id": farmer.id, "village_id": farmer.village_id,
        "certificate_number": certificate.number, "parcel_code": parcel.code,
        "area_mu": parcel.area_mu, "land_class": parcel.land_class,
        "lat_e7": e7(parcel.latitude), "lon_e7": e7(parcel.longitude),
        "contract_end": parcel.contract_end, "pledged": _pledged(parcel, today),
        "source": source, "updated_at": now}
        for certificate in record.certificates for parcel in certificate.parcels}
    return list(rows.values())


def _insert(session: DbSession) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_table)


def _on_conflict(stmt: Any) -> Any:
    """Update a known parcel only when something a device or a decision reads changed, and
    return the farmers of the rows written (inserted or updated)."""
    excluded = stmt.excluded
    changed = sa.or_(*(_table.c[name] != excluded[name] for name in COMPARED))
    return stmt.on_conflict_do_update(
        index_elements=["parcel_code"],
        set_={name: excluded[name] for name in (*COMPARED, "source", "updated_at")},
        where=changed).returning(_table.c.farmer_id)


def upsert(session: DbSession, rows: Sequence[dict[str, Any]]) -> set[int]:
    """Insert or update ``rows``; returns the ids of the farmers whose parcels changed.

    One statement built once per dialect, executed with the rows as parameter sets
    (SQLAlchemy's "insertmanyvalues" sends them as multi-row INSERTs with RETURNING), so a
    request pays for binding its rows, not for building and compiling an upsert. Rows go in
    parcel-code order, so two transactions writing overlapping parcels lock them in the same
    order (no deadlock on PostgreSQL)."""
    if not rows:  # an executemany needs at least one parameter set
        return set()
    rows = sorted(rows, key=lambda row: row["parcel_code"])
    conn = session.connection()
    return set(conn.execute(_UPSERT[conn.dialect.name], rows).scalars())


_UPSERT = {"postgresql": _on_conflict(postgresql.insert(_table)),
           "sqlite": _on_conflict(sqlite.insert(_table))}


def remember(session: DbSession, farmer: Farmer, land_record: LandRecord, *,
             source: str = REGISTRY) -> bool:
    """Keep the parcels of a successful land answer for ``farmer`` (flush only); returns
    whether anything changed, in which case the farmer's devices get a ``farmer`` change.

    The answer is the registry's whole holding for the farmer, so a parcel of theirs it no
    longer lists (transferred, re-registered) is removed. One upsert and one indexed delete.
    """
    rows = rows_of(farmer, land_record, source=source)
    changed = bool(upsert(session, rows)) if rows else False
    gone = session.execute(sa.delete(_table).where(
        _table.c.farmer_id == farmer.id,
        _table.c.parcel_code.not_in([row["parcel_code"] for row in rows])))
    if changed or rowcount(gone):
        changes.record(session, FARMER_KIND, farmer.public_id, farmer.village_id)
        return True
    return False


def remember_lookup(session: DbSession, farmer: Farmer, lookup: Lookup) -> bool:
    """:func:`remember` the land answer of a lookup, if it has one (a failed or unasked land
    registry leaves the parcels as they are)."""
    if lookup.land is None:
        return False
    source = EXTRACT if lookup.sources.get("land") == EXTRACT else REGISTRY
    return remember(session, farmer, lookup.land, source=source)


def from_extracts(session: DbSession, today: date | None = None) -> int:
    """Copy the imported land extract's parcels of the bank's farmers (matched by the keyed
    ID hash) into ``land_parcels``: one ``INSERT ... SELECT ... ON CONFLICT`` over the whole
    extract, writing only what changed; then one ``farmer`` change per farmer concerned.
    Returns how many farmers changed."""
    today = today or utcnow().date()
    parcel, certificate = table(ExtractParcel), table(ExtractCertificate)
    pledge = table(ExtractPledge)
    farmers = table(Farmer)
    active = sa.exists().where(pledge.c.parcel_id == parcel.c.id, pledge.c.start <= today,
                               pledge.c.end >= today)
    select = (
        sa.select(farmers.c.id, farmers.c.village_id, certificate.c.number, parcel.c.code,
                  parcel.c.area_cmu / sa.literal_column("100.0"), parcel.c.land_class,
                  parcel.c.latitude_e6 * 10, parcel.c.longitude_e6 * 10,
                  parcel.c.contract_end, active, sa.literal(EXTRACT),
                  sa.literal(utcnow(), _table.c.updated_at.type))
        .select_from(parcel)
        .join(certificate, certificate.c.id == parcel.c.certificate_id)
        .join(farmers, farmers.c.id_number_hash == certificate.c.holder_hash)
        .where(sa.true())  # SQLite: a WHERE tells its parser ON CONFLICT is not a join's ON
        .order_by(parcel.c.code))
    stmt = _on_conflict(_insert(session).from_select(
        ["farmer_id", "village_id", "certificate_number", "parcel_code", "area_mu",
         "land_class", "lat_e7", "lon_e7", "contract_end", "pledged", "source", "updated_at"],
        select))
    touched = set(session.scalars(stmt))
    notify_farmers(session, touched)
    return len(touched)


def notify_farmers(session: DbSession, farmer_ids: Iterable[int]) -> None:
    """One ``farmer`` change per farmer (their parcels changed behind the ORM's back)."""
    ids = sorted(set(farmer_ids))
    for start in range(0, len(ids), BATCH):
        found = session.execute(sa.select(Farmer.public_id, Farmer.village_id).where(
            Farmer.id.in_(ids[start:start + BATCH]))).all()
        if found:
            session.execute(sa.insert(changes.CHANGES), [
                changes.row(FARMER_KIND, public_id, village_id) for public_id, village_id in found])


# --- reading ---------------------------------------------------------------------------------

def locations(session: DbSession, codes: Iterable[str]) -> dict[str, tuple[int, int]]:
    """The registry's location of each known parcel, ``{code: (lat_e7, lon_e7)}``; unknown
    codes are absent. One query."""
    wanted = sorted(set(codes))
    if not wanted:
        return {}
    found = session.execute(sa.select(_table.c.parcel_code, _table.c.lat_e7, _table.c.lon_e7)
                            .where(_table.c.parcel_code.in_(wanted)))
    return {code: (lat, lon) for code, lat, lon in found}


_DEVICE_COLUMNS: Final = (_table.c.farmer_id, _table.c.certificate_number, _table.c.parcel_code,
                          _table.c.area_mu, _table.c.land_class, _table.c.lat_e7,
                          _table.c.lon_e7, _table.c.contract_end)


def device_view(row: Any) -> dict[str, Any]:
    """A parcel as devices receive it: short keys, no nulls, no floats (the area as a string
    with its two decimals: ``Numeric(10, 2)`` reads back at that scale on both backends)."""
    return {"certificate": row.certificate_number, "code": row.parcel_code,
            "area_mu": str(row.area_mu), "land_class": row.land_class,
            "lat_e7": row.lat_e7, "lon_e7": row.lon_e7,
            "contract_end": row.contract_end.isoformat()}


def of_farmers(session: DbSession, farmer_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """Each farmer's parcels as :func:`device_view` dicts, by parcel code; farmers with none
    are absent. One query."""
    ids = sorted(set(farmer_ids))
    if not ids:
        return {}
    found: dict[int, list[dict[str, Any]]] = {}
    rows = session.execute(sa.select(*_DEVICE_COLUMNS).where(_table.c.farmer_id.in_(ids))
                           .order_by(_table.c.farmer_id, _table.c.parcel_code)).all()
    for row in rows:
        found.setdefault(row.farmer_id, []).append(device_view(row))
    return found


# --- the embedded demo -----------------------------------------------------------------------

def demo_seeder(session: DbSession) -> str | None:
    """The embedded demo's seeder (``core.demo.register_seeder``): the demo farmers' parcels as
    the embedded reference registry (seed ``nongdai``) answers them, so a coordinator's first
    pull shows land before any application was made. Farmers with parcels are left alone."""
    from core.demo import farmer_id_numbers  # noqa: PLC0415 - the demo only
    from core.people.services import id_number_hash  # noqa: PLC0415
    from lending.registries import wire  # noqa: PLC0415
    from lending.registries.reference import synthetic  # noqa: PLC0415

    hashes = [id_number_hash(number) for number in farmer_id_numbers()]
    have = sa.select(_table.c.id).where(_table.c.farmer_id == Farmer.id).exists()
    bare = session.scalars(sa.select(Farmer).where(Farmer.id_number_hash.in_(hashes), ~have)
                           .order_by(Farmer.id)).all()
    today = utcnow().date()
    for farmer in bare:
        record = wire.land_from_json(synthetic.land("nongdai", farmer.id_number_hash, today))
        remember(session, farmer, record)
    return f"demo data: registry parcels of {len(bare)} farmers" if bare else None

"""Places: creating and changing counties, townships, villages and service stations.

Plain functions taking the session first; they flush and write the audit event, the request
(or job, or CLI command) commits. Parents are derived from the division code itself: a
township's first 6 digits are its county's code, a village's first 9 its township's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from core import audit
from core.db import DbSession
from core.errors import Conflict, ValidationFailed
from core.i18n import _, lazy_gettext
from core.places.models import County, Station, Township, Village


class CountyExists(Conflict):
    code = "county-exists"
    title = lazy_gettext("A county with this code exists")


class TownshipExists(Conflict):
    code = "township-exists"
    title = lazy_gettext("A township with this code exists")


class VillageExists(Conflict):
    code = "village-exists"
    title = lazy_gettext("A village with this code exists")


class TownshipCodeMismatch(ValidationFailed):
    code = "township-code-mismatch"
    title = lazy_gettext("The code's first 6 digits name no county")


class VillageCodeMismatch(ValidationFailed):
    code = "village-code-mismatch"
    title = lazy_gettext("The code's first 9 digits name no township")


class VillageOutsideCounty(ValidationFailed):
    code = "village-outside-county"
    title = lazy_gettext("A station serves villages of its own county only")


def _code_taken(session: DbSession, model: Any, code: str) -> bool:
    return session.scalar(sa.select(model.id).where(model.code == code)) is not None


def create_county(session: DbSession, *, code: str, name: str) -> County:
    if _code_taken(session, County, code):
        raise CountyExists(_("County code %(code)s is already registered", code=code))
    county = County(code=code, name=name)
    session.add(county)
    session.flush()
    audit.record(session, "county.create", county, summary={"code": code})
    return county


def create_township(session: DbSession, *, code: str, name: str) -> Township:
    county = session.scalar(sa.select(County).where(County.code == code[:6]))
    if county is None:
        raise TownshipCodeMismatch(errors={"code": [
            _("No county has the code %(code)s.", code=code[:6])]})
    if _code_taken(session, Township, code):
        raise TownshipExists(_("Township code %(code)s is already registered", code=code))
    township = Township(code=code, name=name, county=county)
    session.add(township)
    session.flush()
    audit.record(session, "township.create", township,
                 summary={"code": code, "county_id": str(county.public_id)})
    return township


def create_village(session: DbSession, *, code: str, name: str) -> Village:
    township = session.scalar(sa.select(Township).where(Township.code == code[:9]))
    if township is None:
        raise VillageCodeMismatch(errors={"code": [
            _("No township has the code %(code)s.", code=code[:9])]})
    if _code_taken(session, Village, code):
        raise VillageExists(_("Village code %(code)s is already registered", code=code))
    village = Village(code=code, name=name, township=township)
    session.add(village)
    session.flush()
    audit.record(session, "village.create", village,
                 summary={"code": code, "township_id": str(township.public_id)})
    return village


def update_village(session: DbSession, village: Village, *, name: str) -> Village:
    changed = ["name"] if village.name != name else []
    village.name = name
    session.flush()
    audit.record(session, "village.update", village, summary={"changed": changed})
    return village


def _check_county(township: Township, villages: Iterable[Village]) -> None:
    outside = sorted(v.code for v in villages if v.township.county_id != township.county_id)
    if outside:
        raise VillageOutsideCounty(errors={"village_ids": [
            _("Not in county %(county)s: %(villages)s.", county=township.county.code,
              villages=", ".join(outside))]})


def create_station(session: DbSession, *, name: str, township: Township,
                   villages: list[Village]) -> Station:
    _check_county(township, villages)
    station = Station(name=name, township=township, villages=villages)
    session.add(station)
    session.flush()
    audit.record(session, "station.create", station, summary={
        "township_id": str(township.public_id),
        "village_ids": sorted(str(v.public_id) for v in villages)})
    return station


def update_station(session: DbSession, station: Station, *, name: str | None = None,
                   villages: list[Village] | None = None) -> Station:
    changed = []
    if name is not None and name != station.name:
        station.name = name
        changed.append("name")
    if villages is not None:
        _check_county(station.township, villages)
        if {v.id for v in villages} != {v.id for v in station.villages}:
            station.villages = villages
            changed.append("village_ids")
    session.flush()
    audit.record(session, "station.update", station, summary={"changed": changed})
    return station

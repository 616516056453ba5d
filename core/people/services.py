"""People: registering farmers, their PIPL consents, coordinators and staff.

Plain functions taking the session first; they flush and write the audit event, the caller's
boundary commits. A resident ID number is validated, encrypted, hashed for lookup and masked
here, and nowhere else; its plaintext is never logged, audited or returned.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app

from core import audit
from core.authz import Principal
from core.crypto import vault
from core.db import DbSession, end_read, utcnow, uuid7
from core.errors import Conflict, NotFound, ValidationFailed
from core.i18n import _, lazy_gettext
from core.people import idnumber
from core.people.models import Consent, Coordinator, Farmer, Staff
from core.places.models import Station, Village
from core.security import hash_password

ID_NUMBER_CONTEXT = "farmer.id_number"


class FarmerExists(Conflict):
    code = "farmer-exists"
    title = lazy_gettext("A farmer with this ID number is already registered")


class PhoneTaken(Conflict):
    code = "phone-taken"
    title = lazy_gettext("Another farmer is registered with this phone number")


class UsernameTaken(Conflict):
    code = "username-taken"
    title = lazy_gettext("The username is taken")


class SelfLockout(Conflict):
    code = "self-lockout"
    title = lazy_gettext("You cannot remove your own admin role or deactivate yourself")


class ConsentRevoked(Conflict):
    code = "consent-revoked"
    title = lazy_gettext("The consent is already revoked")


def _apply(obj: Any, changes: dict[str, Any]) -> list[str]:
    """Set the attributes that differ; return their names, sorted."""
    changed = []
    for key, value in changes.items():
        if getattr(obj, key) != value:
            setattr(obj, key, value)
            changed.append(key)
    return sorted(changed)


# --- farmers --------------------------------------------------------------------------------

def _checked_id_number(raw: str) -> tuple[str, Any]:
    try:
        return idnumber.validate(raw)
    except idnumber.InvalidIdNumberError as exc:
        raise ValidationFailed(errors={"id_number": [idnumber.explain(exc)]}) from exc


def id_number_hash(number: str) -> str:
    return vault().lookup_hash(idnumber.normalise(number), ID_NUMBER_CONTEXT)


def _check_phone_free(session: DbSession, phone: str, farmer: Farmer | None = None) -> None:
    stmt = sa.select(Farmer.id).where(Farmer.phone == phone)
    if farmer is not None:
        stmt = stmt.where(Farmer.id != farmer.id)
    if session.scalar(stmt) is not None:
        raise PhoneTaken(errors={"phone": [_("Already registered to another farmer.")]})


def _check_new(session: DbSession, digest: str, phone: str) -> None:
    """One look for both uniques of a new farmer: the ID number first, then the phone."""
    taken = session.execute(sa.select(Farmer.id_number_hash, Farmer.phone).where(
        sa.or_(Farmer.id_number_hash == digest, Farmer.phone == phone)).limit(2)).all()
    if any(row.id_number_hash == digest for row in taken):
        raise FarmerExists(_("This ID number is already registered; look the farmer up instead"))
    if taken:
        raise PhoneTaken(errors={"phone": [_("Already registered to another farmer.")]})


def create_farmer(session: DbSession, *, name: str, phone: str, id_number: str,
                  village: Village, public_id: uuid.UUID | None = None,
                  identity_status: str = "verified") -> Farmer:
    """Register a farmer in ``village``. When the caller began with :func:`core.db.begin_read`,
    the checks run in that read and the write starts after it (the unique constraints on ID
    number and phone back the checks against a twin registered in between).

    ``public_id``: the id a device generated for the farmer (sync), else a new UUIDv7;
    ``identity_status``: ``pending`` until someone has seen the person's ID card."""
    number, born = _checked_id_number(id_number)
    digest = id_number_hash(number)
    _check_new(session, digest, phone)
    farmer = Farmer(name=name, phone=phone, birth_date=born, village=village,
                    id_number_ciphertext=vault().encrypt(number, ID_NUMBER_CONTEXT),
                    id_number_hash=digest, id_number_masked=idnumber.mask(number),
                    identity_status=identity_status, public_id=public_id or uuid7())
    end_read(session, village)
    session.add(farmer)
    session.flush()
    audit.record(session, "farmer.create", farmer, summary={
        "village_id": str(village.public_id), "id_number": farmer.id_number_masked})
    return farmer


def lookup_farmer(session: DbSession, id_number: str, scope: sa.ColumnElement[bool]) -> Farmer:
    """The farmer with this ID number within ``scope`` (a ``visible_to`` condition), or 404."""
    number, _born = _checked_id_number(id_number)
    stmt = sa.select(Farmer).where(Farmer.id_number_hash == id_number_hash(number), scope)
    farmer = session.scalars(stmt).first()
    if farmer is None:
        raise NotFound(_("No farmer with that ID number"))
    audit.record(session, "farmer.lookup", farmer, summary={"id_number": farmer.id_number_masked})
    return farmer


def update_farmer(session: DbSession, farmer: Farmer, **changes: Any) -> Farmer:
    if "phone" in changes:
        _check_phone_free(session, changes["phone"], farmer)
    changed = _apply(farmer, changes)
    session.flush()
    audit.record(session, "farmer.update", farmer, summary={"changed": changed})
    return farmer


# --- consents -------------------------------------------------------------------------------

def grant_consent(session: DbSession, farmer: Farmer, by: Principal, *, purpose: str,
                  valid_days: int, evidence: str | None = None) -> Consent:
    """Record a consent: channel ``app`` when the farmer gives it, else ``coordinator``."""
    longest = int(current_app.config["NONGDAI_CONSENT_MAX_DAYS"])
    if valid_days > longest:
        raise ValidationFailed(errors={"valid_days": [
            _("Must be at most %(longest)d.", longest=longest)]})
    now = utcnow()
    consent = Consent(farmer=farmer, purpose=purpose, granted_at=now,
                      expires_at=now + timedelta(days=valid_days), evidence=evidence,
                      channel="app" if by.kind == "farmer" else "coordinator",
                      recorded_by=by.ref)
    session.add(consent)
    session.flush()
    audit.record(session, "consent.grant", consent, summary={
        "farmer_id": str(farmer.public_id), "purpose": purpose, "channel": consent.channel,
        "expires_at": consent.expires_at.isoformat()})
    return consent


def revoke_consent(session: DbSession, consent: Consent) -> Consent:
    if consent.revoked_at is not None:
        raise ConsentRevoked()
    consent.revoked_at = utcnow()
    session.flush()
    audit.record(session, "consent.revoke", consent, summary={
        "farmer_id": str(consent.farmer.public_id), "purpose": consent.purpose})
    return consent


def has_consent(session: DbSession, farmer_id: int, purpose: str,
                at: datetime | None = None) -> bool:
    """Whether farmer ``farmer_id`` (internal key) has a consent for ``purpose`` in force at
    ``at`` (default now): granted, not yet expired, not revoked."""
    at = at or utcnow()
    stmt = sa.select(Consent.id).where(
        Consent.farmer_id == farmer_id, Consent.purpose == purpose,
        Consent.granted_at <= at, Consent.expires_at > at,
        sa.or_(Consent.revoked_at.is_(None), Consent.revoked_at > at))
    return session.scalar(stmt.limit(1)) is not None


# --- coordinators and staff -----------------------------------------------------------------

def _check_username_free(session: DbSession, username: str) -> None:
    for model in (Staff, Coordinator):
        if session.scalar(sa.select(model.id).where(model.username == username)) is not None:
            raise UsernameTaken(errors={"username": [_("Already taken.")]})


def create_coordinator(session: DbSession, *, username: str, name: str, phone: str, password: str,
                       station: Station) -> Coordinator:
    _check_username_free(session, username)
    coordinator = Coordinator(username=username, name=name, phone=phone, station=station,
                              password_hash=hash_password(password))
    session.add(coordinator)
    session.flush()
    audit.record(session, "coordinator.create", coordinator, summary={
        "username": username, "station_id": str(station.public_id)})
    return coordinator


def update_coordinator(session: DbSession, coordinator: Coordinator, **changes: Any) -> Coordinator:
    changed = _apply(coordinator, changes)
    session.flush()
    names = [("station_id" if name == "station" else name) for name in changed]
    audit.record(session, "coordinator.update", coordinator, summary={"changed": sorted(names)})
    return coordinator


def create_staff(session: DbSession, *, username: str, name: str, password: str,
                 roles: list[str] | frozenset[str], actor: str | None = None) -> Staff:
    _check_username_free(session, username)
    staff = Staff(username=username, name=name, password_hash=hash_password(password),
                  roles=" ".join(sorted(set(roles))))
    session.add(staff)
    session.flush()
    audit.record(session, "staff.create", staff, actor=actor,
                 summary={"username": username, "roles": sorted(set(roles))})
    return staff


def update_staff(session: DbSession, staff: Staff, by: Principal, **changes: Any) -> Staff:
    """Change name, roles or is_active; an admin cannot lock themselves out."""
    if "roles" in changes:
        changes["roles"] = " ".join(sorted(set(changes["roles"])))
    if by.is_staff and by.id == staff.id and (
            "admin" not in changes.get("roles", "admin").split()
            or changes.get("is_active", True) is False):
        raise SelfLockout()
    changed = _apply(staff, changes)
    session.flush()
    audit.record(session, "staff.update", staff,
                 summary={"changed": changed, "roles": sorted(staff.role_set)})
    return staff

"""The registries' JSON, read strictly and written back: one format on the wire and at rest.

The reference registry answers in this format, the HTTP clients read it, the registry cache
stores it, and a decision's snapshot keeps it (:func:`land_to_json` / :func:`land_from_json`)
so the evidence can be re-read years later. Decimals may arrive as strings or JSON numbers
(read through ``str``, never through a binary float); dates are ISO ``YYYY-MM-DD``; money is
yuan with at most two decimals on the wire and integer fen in the types.

Reading is strict about what we use (every field present, of the right type and range) and
tolerant of what we do not: unknown fields are ignored, so a registry that adds a field does
not take lending down. Anything else raises :class:`MalformedAnswer`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from lending.registries.types import (
    Certificate,
    Claim,
    InsurancePolicy,
    InsuranceRecord,
    LandRecord,
    Parcel,
    Pledge,
)

HOLDER_HASH = validate.Regexp(r"^[0-9a-f]{64}$")
POLICY_STATUSES = ("active", "expired", "cancelled")
CLAIM_STATUSES = ("reported", "assessed", "paid", "rejected")
FEN_PER_YUAN = Decimal(100)


class MalformedAnswer(ValueError):
    """A registry answer that does not match the expected shape."""


def _text(max_len: int) -> fields.String:
    return fields.String(required=True, validate=validate.Length(min=1, max=max_len))


def _decimal(low: str, high: str, places: int | None = None) -> fields.Decimal:
    rules: list[Any] = [validate.Range(min=Decimal(low), max=Decimal(high))]
    if places is not None:
        rules.append(_places(places))
    return fields.Decimal(required=True, allow_nan=False, validate=rules)


def _places(places: int) -> Any:
    def check(value: Decimal) -> None:
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -places:
            raise ma.ValidationError(f"At most {places} decimals.")
    return check


def yuan_to_fen(amount: Decimal) -> int:
    return int(amount * FEN_PER_YUAN)


def fen_to_yuan(amount: int) -> str:
    return str((Decimal(amount) / FEN_PER_YUAN).quantize(Decimal("0.01")))


class _Wire(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE  # tolerant reader: a registry may add fields

    period: tuple[str, str] | None = None  # (start, end) fields: the end may not precede it

    @ma.validates_schema
    def _period_in_order(self, data: dict[str, Any], **_: Any) -> None:
        if self.period and data[self.period[1]] < data[self.period[0]]:
            raise ma.ValidationError("Ends before it starts.", self.period[1])


class RegistryPledgeWire(_Wire):
    period = ("start", "end")
    creditor = _text(200)
    amount_yuan = _decimal("0", "1000000000", places=2)
    start = fields.Date(required=True)
    end = fields.Date(required=True)
    active = fields.Boolean(required=True, truthy={True}, falsy={False})

    @ma.post_load
    def make(self, data: dict[str, Any], **_: Any) -> Pledge:
        return Pledge(creditor=data["creditor"], amount_fen=yuan_to_fen(data["amount_yuan"]),
                      start=data["start"], end=data["end"], active=data["active"])


class RegistryParcelWire(_Wire):
    period = ("contract_start", "contract_end")
    code = _text(40)
    area_mu = _decimal("0.01", "100000")
    land_class = _text(30)
    village_code = fields.String(required=True, validate=validate.Regexp(r"^[0-9]{12}$"))
    latitude = _decimal("-90", "90")
    longitude = _decimal("-180", "180")
    contract_start = fields.Date(required=True)
    contract_end = fields.Date(required=True)
    pledges = fields.List(fields.Nested(RegistryPledgeWire), required=True)

    @ma.post_load
    def make(self, data: dict[str, Any], **_: Any) -> Parcel:
        return Parcel(**{**data, "pledges": tuple(data["pledges"])})


class RegistryCertificateWire(_Wire):
    number = _text(40)
    holder_hash = fields.String(required=True, validate=HOLDER_HASH)
    holder_name = _text(100)
    parcels = fields.List(fields.Nested(RegistryParcelWire), required=True)

    @ma.post_load
    def make(self, data: dict[str, Any], **_: Any) -> Certificate:
        return Certificate(**{**data, "parcels": tuple(data["parcels"])})


class RegistryLandWire(_Wire):
    """A holder's certificates (``foreign`` only in snapshots, never on the wire)."""

    holder_hash = fields.String(required=True, validate=HOLDER_HASH)
    certificates = fields.List(fields.Nested(RegistryCertificateWire), required=True)
    foreign = fields.List(fields.Nested(RegistryCertificateWire), load_default=list)


class RegistryPolicyWire(_Wire):
    period = ("start", "end")
    number = _text(40)
    crop = _text(30)
    insured_area_mu = _decimal("0", "100000")
    sum_insured_yuan = _decimal("0", "1000000000", places=2)
    start = fields.Date(required=True)
    end = fields.Date(required=True)
    status = fields.String(required=True, validate=validate.OneOf(POLICY_STATUSES))
    parcel_codes = fields.List(fields.String(validate=validate.Length(min=1, max=40)),
                               load_default=list)

    @ma.post_load
    def make(self, data: dict[str, Any], **_: Any) -> InsurancePolicy:
        return InsurancePolicy(
            number=data["number"], crop=data["crop"], insured_area_mu=data["insured_area_mu"],
            sum_insured_fen=yuan_to_fen(data["sum_insured_yuan"]), start=data["start"],
            end=data["end"], status=data["status"], parcel_codes=tuple(data["parcel_codes"]))


class RegistryClaimWire(_Wire):
    policy_number = _text(40)
    event = _text(30)
    event_date = fields.Date(required=True)
    loss_ratio = _decimal("0", "1")
    status = fields.String(required=True, validate=validate.OneOf(CLAIM_STATUSES))

    @ma.post_load
    def make(self, data: dict[str, Any], **_: Any) -> Claim:
        return Claim(**data)


class RegistryInsuranceWire(_Wire):
    holder_hash = fields.String(required=True, validate=HOLDER_HASH)
    policies = fields.List(fields.Nested(RegistryPolicyWire), required=True)
    claims = fields.List(fields.Nested(RegistryClaimWire), required=True)


_LAND = RegistryLandWire()
_CERTIFICATE = RegistryCertificateWire()
_INSURANCE = RegistryInsuranceWire()


def _load(schema: ma.Schema, data: Any) -> Any:
    if not isinstance(data, dict):
        raise MalformedAnswer("expected a JSON object")
    try:
        return schema.load(data)
    except ma.ValidationError as exc:
        raise MalformedAnswer(_first_error(exc.messages)) from None


def _first_error(messages: Any, path: str = "") -> str:
    """``parcels.0.area_mu: Not a valid number.``: short, and free of the values themselves."""
    if isinstance(messages, dict):
        key, value = next(iter(messages.items()))
        return _first_error(value, f"{path}.{key}" if path else str(key))
    if isinstance(messages, list) and messages:
        return _first_error(messages[0], path)
    return f"{path}: {messages}"


# --- reading ---------------------------------------------------------------------------------

def land_from_json(data: Any) -> LandRecord:
    loaded = _load(_LAND, data)
    return LandRecord(holder_hash=loaded["holder_hash"],
                      certificates=tuple(loaded["certificates"]),
                      foreign=tuple(loaded["foreign"]))


def certificate_from_json(data: Any) -> Certificate:
    return _load(_CERTIFICATE, data)


def insurance_from_json(data: Any) -> InsuranceRecord:
    loaded = _load(_INSURANCE, data)
    return InsuranceRecord(holder_hash=loaded["holder_hash"],
                           policies=tuple(loaded["policies"]), claims=tuple(loaded["claims"]))


# --- writing ---------------------------------------------------------------------------------

def pledge_to_json(pledge: Pledge) -> dict[str, Any]:
    return {"creditor": pledge.creditor, "amount_yuan": fen_to_yuan(pledge.amount_fen),
            "start": pledge.start.isoformat(), "end": pledge.end.isoformat(),
            "active": pledge.active}


def parcel_to_json(parcel: Parcel) -> dict[str, Any]:
    return {"code": parcel.code, "area_mu": str(parcel.area_mu),
            "land_class": parcel.land_class, "village_code": parcel.village_code,
            "latitude": str(parcel.latitude), "longitude": str(parcel.longitude),
            "contract_start": parcel.contract_start.isoformat(),
            "contract_end": parcel.contract_end.isoformat(),
            "pledges": [pledge_to_json(p) for p in parcel.pledges]}


def certificate_to_json(certificate: Certificate) -> dict[str, Any]:
    return {"number": certificate.number, "holder_hash": certificate.holder_hash,
            "holder_name": certificate.holder_name,
            "parcels": [parcel_to_json(p) for p in certificate.parcels]}


def land_to_json(record: LandRecord) -> dict[str, Any]:
    return {"holder_hash": record.holder_hash,
            "certificates": [certificate_to_json(c) for c in record.certificates],
            "foreign": [certificate_to_json(c) for c in record.foreign]}


def policy_to_json(policy: InsurancePolicy) -> dict[str, Any]:
    return {"number": policy.number, "crop": policy.crop,
            "insured_area_mu": str(policy.insured_area_mu),
            "sum_insured_yuan": fen_to_yuan(policy.sum_insured_fen),
            "start": policy.start.isoformat(), "end": policy.end.isoformat(),
            "status": policy.status, "parcel_codes": list(policy.parcel_codes)}


def claim_to_json(claim: Claim) -> dict[str, Any]:
    return {"policy_number": claim.policy_number, "event": claim.event,
            "event_date": claim.event_date.isoformat(), "loss_ratio": str(claim.loss_ratio),
            "status": claim.status}


def insurance_to_json(record: InsuranceRecord) -> dict[str, Any]:
    return {"holder_hash": record.holder_hash,
            "policies": [policy_to_json(p) for p in record.policies],
            "claims": [claim_to_json(c) for c in record.claims]}

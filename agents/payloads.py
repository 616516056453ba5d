"""Checking operation payloads (docs/sync-protocol.md §6) by hand, field by field.

Plain Python, not marshmallow: the visit types are the push's fast path (thousands per second)
and a schema load costs more than the rest of the operation. Each reader takes the raw value
and the ``errors`` dict it fills; :func:`check` turns a non-empty ``errors`` into one
``rejected`` ``invalid-payload`` with the errors keyed by field, in the coordinator's language.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from core.i18n import _
from sync.registry import Rejected

INVALID: Final = "invalid-payload"
NOT_FOUND: Final = "not-found"
NOT_ALLOWED: Final = "not-allowed"
NOTES_MAX: Final = 1000
PHOTOS_MAX: Final = 20
CODE_MAX: Final = 40
LAT_MAX: Final = 90 * 10_000_000
LON_MAX: Final = 180 * 10_000_000
ACCURACY_MAX: Final = 100_000  # metres: beyond this a fix says nothing
AREA = re.compile(r"[0-9]{1,8}(\.[0-9]{1,2})?")
SHA256 = re.compile(r"[0-9a-f]{64}")
FLAG_CODE = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
Errors = dict[str, list[str]]


def check(payload: Any, allowed: Iterable[str], errors: Errors) -> None:
    """Raise ``invalid-payload`` if ``errors`` holds anything or ``payload`` has unknown keys."""
    if not isinstance(payload, Mapping):
        raise Rejected(INVALID, _("The payload must be an object."),
                       {"_schema": [_("An object.")]})
    for key in set(payload) - set(allowed):
        errors[key] = [_("Unknown field.")]
    if errors:
        raise Rejected(INVALID, _("The operation has invalid fields; see errors."), errors)


def _need(payload: Mapping[str, Any], key: str, errors: Errors, required: bool) -> bool:
    """Whether ``key`` holds a value to read (``False``: absent or null, an error if required)."""
    if payload.get(key) is None:
        if required:
            errors[key] = [_("Missing data for required field.")]
        return False
    return True


def a_uuid(payload: Mapping[str, Any], key: str, errors: Errors, *,
           required: bool = True) -> uuid.UUID | None:
    if not _need(payload, key, errors, required):
        return None
    value = payload[key]
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    errors[key] = [_("Not a valid UUID.")]
    return None


def text(payload: Mapping[str, Any], key: str, errors: Errors, *, longest: int,
         required: bool = True, shortest: int = 0) -> str | None:
    if not _need(payload, key, errors, required):
        return None
    value = payload[key]
    if not isinstance(value, str) or len(value) > longest or len(value.strip()) < shortest:
        errors[key] = [_("Text of %(low)s to %(n)s characters.", low=shortest, n=longest)]
        return None
    return value


def boolean(payload: Mapping[str, Any], key: str, errors: Errors) -> bool | None:
    value = payload.get(key)
    if not isinstance(value, bool):
        errors[key] = [_("Must be true or false.")]
        return None
    return value


def choice(payload: Mapping[str, Any], key: str, options: tuple[str, ...],
           errors: Errors) -> str | None:
    value = payload.get(key)
    if value not in options:
        errors[key] = [_("Must be one of: %(options)s.", options=", ".join(options))]
        return None
    return str(value)


def area(payload: Mapping[str, Any], key: str, errors: Errors) -> Decimal | None:
    """An area in mu as decimal text (``"3.25"``), 0 or more, at most two decimals."""
    if not _need(payload, key, errors, False):
        return None
    value = payload[key]
    if not isinstance(value, str) or not AREA.fullmatch(value):
        errors[key] = [_("Mu as decimal text, such as \"3.25\".")]
        return None
    try:
        return Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        errors[key] = [_("Mu as decimal text, such as \"3.25\".")]
        return None


def _integer(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def location(payload: Mapping[str, Any], key: str, errors: Errors, *,
             required: bool) -> tuple[int, int, int] | None:
    """``{"lat_e7", "lon_e7", "accuracy_m"}``: integers (1e-7 degrees, metres)."""
    if not _need(payload, key, errors, required):
        return None
    value = payload[key]
    if not isinstance(value, Mapping) or set(value) - {"lat_e7", "lon_e7", "accuracy_m"}:
        errors[key] = [_("An object with lat_e7, lon_e7 and accuracy_m.")]
        return None
    lat, lon, accuracy = value.get("lat_e7"), value.get("lon_e7"), value.get("accuracy_m", 0)
    if accuracy is None:
        accuracy = 0
    if not (_integer(lat, -LAT_MAX, LAT_MAX) and _integer(lon, -LON_MAX, LON_MAX)
            and _integer(accuracy, 0, ACCURACY_MAX)):
        errors[key] = [_("Latitude and longitude in integer 1e-7 degrees, accuracy in whole "
                         "metres from 0.")]
        return None
    return int(lat or 0), int(lon or 0), int(accuracy)


def photos(payload: Mapping[str, Any], key: str, errors: Errors) -> list[str]:
    """SHA-256 hex digests (lower case) of photos uploaded before the operation."""
    value = payload.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > PHOTOS_MAX or not all(
            isinstance(sha, str) and SHA256.fullmatch(sha) for sha in value):
        errors[key] = [_("At most %(n)s SHA-256 digests in lower-case hex.", n=PHOTOS_MAX)]
        return []
    return list(dict.fromkeys(value))


def codes(payload: Mapping[str, Any], key: str, errors: Errors) -> list[str]:
    value = payload.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > PHOTOS_MAX or not all(
            isinstance(code, str) and FLAG_CODE.fullmatch(code) for code in value):
        errors[key] = [_("A list of short codes (lower-case letters, digits, - and _).")]
        return []
    return list(dict.fromkeys(value))


def moment(payload: Mapping[str, Any], key: str, errors: Errors) -> datetime | None:
    value = payload.get(key)
    try:
        at = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        errors[key] = [_("A date and time with its time zone.")]
        return None
    return at


def day(payload: Mapping[str, Any], key: str, errors: Errors) -> date | None:
    if not _need(payload, key, errors, False):
        return None
    value = payload[key]
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    errors[key] = [_("A date (YYYY-MM-DD).")]
    return None


def notes(payload: Mapping[str, Any], errors: Errors) -> str:
    return text(payload, "notes", errors, longest=NOTES_MAX, required=False) or ""

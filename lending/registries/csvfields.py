"""Reading one field of a registry extract line: each parser returns the value or raises
:class:`Rejected` with a reason that names the column and never echoes the value (a line may
hold a resident ID number)."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation

from core.people import idnumber
from core.people.services import id_number_hash

_HOLDER_HASH = re.compile(r"[0-9a-f]{64}")
_VILLAGE = re.compile(r"[0-9]{12}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class Rejected(ValueError):
    """This line cannot be imported; the message is the reason shown in the report."""


def text(row: dict[str, str], column: str, max_len: int) -> str:
    value = row.get(column, "").strip()
    if not value:
        raise Rejected(f"{column}: required")
    if len(value) > max_len:
        raise Rejected(f"{column}: longer than {max_len} characters")
    if "\x00" in value:
        raise Rejected(f"{column}: holds a NUL character")
    return value


def choice(row: dict[str, str], column: str, allowed: tuple[str, ...]) -> str:
    value = row.get(column, "").strip().lower()
    if value not in allowed:
        raise Rejected(f"{column}: must be one of {', '.join(allowed)}")
    return value


def scaled(row: dict[str, str], column: str, places: int, low: str, high: str) -> int:
    """A decimal with at most ``places`` decimals in [low, high], as an integer of 10^-places."""
    raw = row.get(column, "").strip()
    if not raw:
        raise Rejected(f"{column}: required")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise Rejected(f"{column}: not a number") from None
    if not value.is_finite():
        raise Rejected(f"{column}: not a number")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -places:
        raise Rejected(f"{column}: at most {places} decimals")
    if not Decimal(low) <= value <= Decimal(high):
        raise Rejected(f"{column}: must be between {low} and {high}")
    return int(value.scaleb(places))


def day(row: dict[str, str], column: str) -> date:
    raw = row.get(column, "").strip()
    if not raw:
        raise Rejected(f"{column}: required")
    try:
        if not _DATE.fullmatch(raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise Rejected(f"{column}: not a date (YYYY-MM-DD)") from None


def period(row: dict[str, str], start_column: str, end_column: str) -> tuple[date, date]:
    start, end = day(row, start_column), day(row, end_column)
    if end < start:
        raise Rejected(f"{end_column}: before {start_column}")
    return start, end


def village(row: dict[str, str], column: str) -> str:
    value = row.get(column, "").strip()
    if not _VILLAGE.fullmatch(value):
        raise Rejected(f"{column}: must be a 12-digit division code")
    return value


def holder(row: dict[str, str]) -> str:
    """The holder's keyed hash: given as is, or made here from a resident ID number, which is
    then forgotten (the bank never stores it in the clear)."""
    if "holder_id_hash" in row:
        value = row["holder_id_hash"].strip().lower()
        if not _HOLDER_HASH.fullmatch(value):
            raise Rejected("holder_id_hash: must be 64 hex characters")
        return value
    try:
        number, _ = idnumber.validate(row.get("holder_id_number", ""))
    except idnumber.InvalidIdNumberError:
        raise Rejected("holder_id_number: not a valid resident ID number") from None
    return id_number_hash(number)


def blank(row: dict[str, str], columns: tuple[str, ...]) -> bool:
    """Whether all of ``columns`` are empty; some but not all empty is a rejection."""
    filled = [c for c in columns if row.get(c, "").strip()]
    if filled and len(filled) != len(columns):
        missing = [c for c in columns if c not in filled]
        raise Rejected(f"{missing[0]}: required when {filled[0]} is given")
    return not filled

"""Resident identity card numbers (居民身份证号码, GB 11643): validation and masking."""

from __future__ import annotations

import re
from datetime import date

from core.i18n import N_, gettext

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_SHAPE = re.compile(r"[0-9]{17}[0-9X]")  # ASCII digits only (str.isdigit accepts full-width)


class InvalidIdNumberError(ValueError):
    """Why a number is refused: an English message id (see :func:`explain`)."""


def explain(exc: InvalidIdNumberError) -> str:
    """The refusal as the person reads it, in the current language."""
    return gettext("Not a valid resident ID number: %(reason)s.", reason=gettext(str(exc)))


def check_digit(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character for the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def normalise(raw: str) -> str:
    return raw.strip().upper()


def validate(raw: str) -> tuple[str, date]:
    """Return the normalised number and the birth date, or raise :class:`InvalidIdNumberError`."""
    number = normalise(raw)
    if not _SHAPE.fullmatch(number):
        raise InvalidIdNumberError(N_("must be 17 digits followed by a digit or X"))
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError as exc:
        raise InvalidIdNumberError(N_("positions 7-14 are not a valid birth date")) from exc
    if born.year < 1900 or born > date.today():  # noqa: DTZ011 - a calendar date, not a time
        raise InvalidIdNumberError(N_("the birth date is out of range"))
    if check_digit(number[:17]) != number[17]:
        raise InvalidIdNumberError(N_("the check digit does not match"))
    return number, born


def mask(number: str) -> str:
    """``3301**********123X``: region prefix and last four only."""
    return f"{number[:4]}{'*' * 10}{number[-4:]}"


def make(region6: str, born: date, sequence: int) -> str:
    """Build a valid number (demo data and tests)."""
    first17 = f"{region6}{born:%Y%m%d}{sequence % 1000:03d}"
    return first17 + check_digit(first17)

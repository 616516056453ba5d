"""Resident ID numbers (GB 11643): check digit, birth date, X, normalisation, masking."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.people import idnumber

# A published sample number (GB 11643 worked example) whose check character is X.
SAMPLE_X = "11010519491231002X"
FULL_WIDTH = str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))


def test_a_known_number_with_an_x_check_digit() -> None:
    assert idnumber.check_digit(SAMPLE_X[:17]) == "X"
    assert idnumber.validate(SAMPLE_X) == (SAMPLE_X, date(1949, 12, 31))


def test_lowercase_x_and_spaces_are_normalised() -> None:
    number, born = idnumber.validate(f"  {SAMPLE_X.lower()} ")
    assert number == SAMPLE_X
    assert born == date(1949, 12, 31)


def test_masking_keeps_region_prefix_and_last_four() -> None:
    assert idnumber.mask(SAMPLE_X) == "1101**********002X"


@pytest.mark.parametrize(("raw", "reason"), [
    ("110105194912310021", "check digit"),
    ("11010519491231002Y", "17 digits"),
    ("1101051949123100", "17 digits"),
    ("11010519491231002XX", "17 digits"),
    (SAMPLE_X.translate(FULL_WIDTH), "17 digits"),  # str.isdigit() accepts these
    ("", "17 digits"),
])
def test_malformed_numbers_are_rejected(raw: str, reason: str) -> None:
    with pytest.raises(idnumber.InvalidIdNumberError, match=reason):
        idnumber.validate(raw)


@pytest.mark.parametrize("birth", ["19490230", "19491301", "19490000", "18991231", "29991231"])
def test_impossible_birth_dates_are_rejected(birth: str) -> None:
    first17 = f"110105{birth}002"
    with pytest.raises(idnumber.InvalidIdNumberError, match="birth date"):
        idnumber.validate(first17 + idnumber.check_digit(first17))


regions = st.from_regex(r"[1-9][0-9]{5}", fullmatch=True)
births = st.dates(min_value=date(1900, 1, 1), max_value=date.today())  # noqa: DTZ011
sequences = st.integers(min_value=0, max_value=999)


@given(regions, births, sequences)
def test_made_numbers_always_validate(region: str, born: date, sequence: int) -> None:
    number = idnumber.make(region, born, sequence)
    assert idnumber.validate(number) == (number, born)
    assert idnumber.validate(number.lower()) == (number, born)


@given(regions, births, sequences, st.integers(min_value=0, max_value=16),
       st.integers(min_value=1, max_value=9))
def test_changing_any_one_of_the_first_17_digits_is_rejected(
        region: str, born: date, sequence: int, position: int, shift: int) -> None:
    number = idnumber.make(region, born, sequence)
    digit = str((int(number[position]) + shift) % 10)
    changed = number[:position] + digit + number[position + 1:]
    with pytest.raises(idnumber.InvalidIdNumberError):
        idnumber.validate(changed)

"""Row factories for tests: real rows through the real models, flushed, never committed.

Commit happens in the test (``session.commit()``) when an HTTP request must see the rows.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import date
from typing import Any

from core.crypto import vault
from core.people import idnumber
from core.people.models import Coordinator, Farmer, Staff
from core.places.models import County, Station, Township, Village
from core.security import hash_password

PASSWORD = "correct horse battery"
_seq = itertools.count(1)


def _n() -> int:
    return next(_seq)


def county(session: Any, code: str | None = None, name: str = "德清县") -> County:
    row = County(code=code or f"{330500 + _n() % 99:06d}", name=name)
    session.add(row)
    session.flush()
    return row


def township(session: Any, parent: County | None = None, code: str | None = None,
             name: str = "新市镇") -> Township:
    parent = parent or county(session)
    row = Township(code=code or f"{parent.code}{100 + _n() % 900:03d}", name=name,
                   county=parent)
    session.add(row)
    session.flush()
    return row


def village(session: Any, parent: Township | None = None, code: str | None = None,
            name: str | None = None) -> Village:
    parent = parent or township(session)
    n = _n()
    row = Village(code=code or f"{parent.code}{200 + n % 800:03d}", name=name or f"村{n}",
                  township=parent)
    session.add(row)
    session.flush()
    return row


def station(session: Any, villages: list[Village], name: str | None = None) -> Station:
    row = Station(name=name or f"服务站{_n()}", township=villages[0].township,
                  villages=list(villages))
    session.add(row)
    session.flush()
    return row


def staff(session: Any, roles: tuple[str, ...] = ("admin",), username: str | None = None,
          password: str = PASSWORD) -> Staff:
    row = Staff(username=username or f"staff{_n()}", name="行员",
                password_hash=hash_password(password), roles=" ".join(sorted(roles)))
    session.add(row)
    session.flush()
    return row


def coordinator(session: Any, at: Station, username: str | None = None,
                password: str = PASSWORD) -> Coordinator:
    n = _n()
    row = Coordinator(username=username or f"coord{n}", name="协贷员", phone=f"139{n:08d}",
                      password_hash=hash_password(password), station=at)
    session.add(row)
    session.flush()
    return row


def id_number(born: date = date(1980, 5, 17)) -> str:
    return idnumber.make("330521", born, _n())


def farmer(session: Any, home: Village, id_no: str | None = None, phone: str | None = None,
           name: str = "张三") -> Farmer:
    number = idnumber.normalise(id_no or id_number())
    _, born = idnumber.validate(number)
    v = vault()
    row = Farmer(
        name=name,
        phone=phone or f"138{_n():08d}",
        id_number_ciphertext=v.encrypt(number, "farmer.id_number"),
        id_number_hash=v.lookup_hash(number, "farmer.id_number"),
        id_number_masked=idnumber.mask(number),
        birth_date=born,
        village=home,
    )
    session.add(row)
    session.flush()
    return row


KINDS = {Farmer: "farmer", Coordinator: "coordinator", Staff: "staff"}


def token_pair(session: Any, row: Farmer | Coordinator | Staff) -> dict[str, Any]:
    """Sign ``row`` in directly (no SMS, no password): its access and refresh tokens."""
    from core.auth.sessions import issue_tokens  # noqa: PLC0415

    pair = issue_tokens(session, KINDS[type(row)], row.id)
    session.commit()
    return pair


def auth_headers(session: Any, row: Farmer | Coordinator | Staff) -> dict[str, str]:
    """Sign ``row`` in directly (no SMS, no password) and return the Bearer header."""
    from core.auth.sessions import issue_tokens  # noqa: PLC0415

    tokens = issue_tokens(session, KINDS[type(row)], row.id)
    session.commit()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def device_tokens(session: Any, row: Coordinator,
                  device_id: uuid.UUID | None = None) -> tuple[dict[str, Any], Any]:
    """Register a device for coordinator ``row`` and sign in on it (no password): the token
    pair of a device-bound session, and the ``Device`` row."""
    from core.auth import devices  # noqa: PLC0415
    from core.auth.sessions import issue_tokens  # noqa: PLC0415

    device = devices.register(session, row, device_id or uuid.uuid4(), "test phone")
    pair = issue_tokens(session, "coordinator", row.id, device.id)
    session.commit()
    return pair, device


def device_headers(session: Any, row: Coordinator,
                   device_id: uuid.UUID | None = None) -> tuple[dict[str, str], Any]:
    """:func:`device_tokens` as a Bearer header, and the ``Device`` row."""
    pair, device = device_tokens(session, row, device_id)
    return {"Authorization": f"Bearer {pair['access_token']}"}, device

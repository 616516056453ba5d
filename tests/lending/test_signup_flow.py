"""A farmer new to the bank: sign up by SMS code from the phone, apply, wait for the
coordinator's identity check, get the decision — the whole farmer flow over HTTP, with the
reference registries on loopback."""

from __future__ import annotations

import re
import uuid
from datetime import date
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa

from core.db import utcnow
from core.outbox import OutboxMessage
from core.people.models import Farmer
from lending.applications import fieldwork
from lending.applications.models import Application
from tests import factories as f
from tests.core.test_people_helpers import assert_problem
from tests.lending import origination_world as w
from tests.lending.origination_world import API

PHONE = "13912345678"


class Phone:
    """The farmer's phone: keeps the SMS the bank sends."""

    inbox: ClassVar[list[tuple[str, str]]] = []

    def send(self, phone: str, body: str) -> None:
        self.inbox.append((phone, body))


@pytest.fixture
def inbox(app: Any) -> list[tuple[str, str]]:
    Phone.inbox = []
    app.config["NONGDAI_SMS_SENDER"] = f"{__name__}:Phone"
    return Phone.inbox


@pytest.fixture
def world(session: Any, registry: Any) -> w.World:
    return w.build(session)


def _code(inbox: list[tuple[str, str]]) -> str:
    match = re.search(r"(\d{6})", inbox[-1][1])
    assert match, inbox
    return match.group(1)


def _sign_up(client: Any, session: Any, world: w.World, inbox: Any, *, number: str,
             lang: str = "zh-CN") -> Any:
    session.commit()
    asked = client.post(f"{API}/auth/sign-up/code", json={"phone": PHONE})
    assert asked.status_code == 202
    return client.post(f"{API}/auth/sign-up", headers={"Accept-Language": lang}, json={
        "phone": PHONE, "code": _code(inbox), "name": "孙小梅", "id_number": number,
        "village_code": world.village.code})


def test_sign_up_apply_field_check_decision(client, session, registry, world, inbox):
    number = f.id_number(date(1985, 6, 1))
    signed = _sign_up(client, session, world, inbox, number=number, lang="en")
    assert signed.status_code == 200, signed.get_json()
    auth = {"Authorization": f"Bearer {signed.get_json()['access_token']}"}
    farmer = session.scalars(sa.select(Farmer).where(Farmer.phone == PHONE)).one()
    assert (farmer.identity_status, farmer.language) == ("pending", "en")
    land = w.plant(registry, farmer)
    answer = client.post(f"{API}/applications", headers=w.key(
        {**auth, "Accept-Language": "en"}), json=w.body(
        world, land, consents=["credit_decision", "land_registry", "insurance"]))
    assert answer.status_code == 201, answer.get_json()
    data = answer.get_json()
    assert data["state"] == "awaiting_field_check"
    assert {"field_check_identity", "field_check_first_loan"} <= {
        r["code"] for r in data["decision"]["reasons"]}
    assert "coordinator will visit" in data["explanation"]  # in the farmer's English

    application = session.scalars(sa.select(Application).where(
        Application.farmer_id == farmer.id)).one()
    fieldwork.record_field_check(
        session, client_id=uuid.uuid4(), application=application,
        coordinator_id=world.coordinator.id, identity_verified=True,
        parcels=[{"parcel_code": p["code"], "visited": True, "crop_seen": "rice",
                  "estimated_area_mu": float(p["area_mu"]), "latitude": 30.6,
                  "longitude": 120.1, "accuracy_m": 6.0} for p in land],
        notes="身份证已核对", recorded_at=utcnow())
    session.commit()
    session.refresh(farmer)
    assert farmer.identity_status == "verified"
    final = client.get(f"{API}/applications/{data['id']}",
                       headers={**auth, "Accept-Language": "en"}).get_json()
    assert final["state"] == "approved"
    assert final["explanation"].startswith("Approved")
    queued = session.scalars(sa.select(OutboxMessage).order_by(OutboxMessage.id.desc())).first()
    assert "approved" in queued.body  # queued by the check's transaction, sent by the job


def test_a_registered_phone_is_sent_to_sign_in(client, session, world, inbox):
    f.farmer(session, world.village, phone=PHONE)
    answer = _sign_up(client, session, world, inbox, number=f.id_number(date(1990, 1, 2)))
    assert_problem(answer, 409, "already-registered")


def test_an_id_number_registered_with_another_phone_is_refused(client, session, world, inbox):
    number = f.id_number(date(1979, 4, 5))
    f.farmer(session, world.village, id_no=number)
    answer = _sign_up(client, session, world, inbox, number=number)
    assert_problem(answer, 409, "farmer-exists")
    assert session.scalar(sa.select(sa.func.count()).select_from(Farmer).where(
        Farmer.phone == PHONE)) == 0


def test_a_wrong_code_creates_nothing(client, session, world, inbox):
    session.commit()
    client.post(f"{API}/auth/sign-up/code", json={"phone": PHONE})
    wrong = "000000" if _code(inbox) != "000000" else "111111"
    answer = client.post(f"{API}/auth/sign-up", json={
        "phone": PHONE, "code": wrong, "name": "孙小梅",
        "id_number": f.id_number(date(1985, 6, 1)), "village_code": world.village.code})
    assert_problem(answer, 401, "otp-invalid")
    assert session.scalar(sa.select(sa.func.count()).select_from(Farmer).where(
        Farmer.phone == PHONE)) == 0

"""Offers and loans over HTTP: the schedule preview (every type, the harvest, the fallback,
Chinese and English), accepting once, and who sees which loan."""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from core.audit import AuditEvent
from core.authz import Principal
from core.outbox import OutboxMessage
from core.sms import mask_phone
from lending.applications import states
from lending.servicing import loans, schedules
from lending.servicing.models import Loan
from tests import factories as f
from tests.core.test_people_helpers import assert_problem, creating
from tests.servicing import world as w

API = w.API
TODAY = "2027-03-01"


@pytest.fixture
def world(app: Any, session: Any) -> w.World:
    app.config["NONGDAI_BUSINESS_DATE"] = TODAY
    built = w.build(session)
    session.commit()
    return built


def _offer(client: Any, headers: dict[str, str], application: Any, **extra: Any) -> Any:
    return client.get(f"{API}/applications/{application.public_id}/offer",
                      headers={**headers, **extra})


def _accept(client: Any, headers: dict[str, str], application: Any) -> Any:
    return client.post(f"{API}/applications/{application.public_id}/accept",
                       headers=creating(headers))


def _approved(session: Any, world: w.World, product_type: str = "bullet_at_harvest",
              farmer: Any = None, **kwargs: Any) -> tuple[Any, Any]:
    who = farmer or w.farmer(session, world)
    application = w.approved(session, world, who, product=world.products[product_type],
                             **kwargs)
    session.commit()
    return who, application


# --- the offer ----------------------------------------------------------------------------------

def test_the_offer_puts_the_bullet_at_the_rice_harvest(client: Any, session: Any,
                                                       world: w.World) -> None:
    farmer, application = _approved(session, world, term_months=8)

    response = _offer(client, f.auth_headers(session, farmer), application,
                      **{"Accept-Language": "en"})

    assert response.status_code == 200, response.get_json()
    assert response.headers["Content-Language"] == "en"
    body = response.get_json()
    assert body["installments"] == [{"seq": 1, "due_date": "2027-10-31",
                                     "principal_due_fen": 2_000_000,
                                     "interest_due_fen": 58_966, "total_fen": 2_058_966}]
    assert body["totals"] == {"principal_fen": 2_000_000, "interest_fen": 58_966,
                              "total_fen": 2_058_966}
    assert (body["annual_rate_bp"], body["day_count"], body["penalty_rate_bp"]) == (
        435, "ACT/360", 652)
    assert (body["start_on"], body["maturity_date"], body["kind"]) == (
        TODAY, "2027-10-31", "term")
    assert body["application_id"] == str(application.public_id)
    assert body["line"] is None
    assert "at the rice harvest, by October 31, 2027" in body["explanation"][0]
    assert "20,589.66 yuan" in body["explanation"][0]
    assert "4.35% a year" in body["explanation"][1]


def test_the_offer_speaks_chinese_by_default(client: Any, session: Any,
                                             world: w.World) -> None:
    farmer, application = _approved(session, world, term_months=8)

    response = _offer(client, f.auth_headers(session, farmer), application)

    assert response.status_code == 200
    assert response.headers["Content-Language"] == "zh-CN"
    assert "2027年10月31日" in response.get_json()["explanation"][0]


def test_without_a_crop_calendar_the_bullet_falls_due_at_the_term_end(
        client: Any, session: Any, world: w.World) -> None:
    farmer, application = _approved(session, world, term_months=8, crop="tea")

    body = _offer(client, f.auth_headers(session, farmer), application,
                  **{"Accept-Language": "en"}).get_json()

    assert [i["due_date"] for i in body["installments"]] == ["2027-11-01"]
    assert "end of the term, by November 1, 2027" in body["explanation"][0]


def test_a_harvest_after_the_term_means_the_term_end(client: Any, session: Any,
                                                     world: w.World) -> None:
    farmer, application = _approved(session, world, term_months=4)
    body = _offer(client, f.auth_headers(session, farmer), application).get_json()
    assert [i["due_date"] for i in body["installments"]] == ["2027-07-01"]


@pytest.mark.parametrize("case", [("equal_instalments", 12, None),
                                  ("interest_monthly_principal_at_maturity", 12, 2_000_000)])
def test_the_offer_of_every_monthly_type(client: Any, session: Any, world: w.World,
                                         case: tuple[str, int, int | None]) -> None:
    product_type, count, last_principal = case
    farmer, application = _approved(session, world, product_type, term_months=count)

    body = _offer(client, f.auth_headers(session, farmer), application,
                  **{"Accept-Language": "en"}).get_json()

    rows = body["installments"]
    assert len(rows) == count
    assert rows[0]["due_date"] == "2027-04-01"
    assert body["maturity_date"] == rows[-1]["due_date"]
    assert sum(r["principal_due_fen"] for r in rows) == 2_000_000
    assert body["totals"]["interest_fen"] == sum(r["interest_due_fen"] for r in rows)
    assert body["totals"]["total_fen"] == 2_000_000 + body["totals"]["interest_fen"]
    if last_principal:
        assert [r["principal_due_fen"] for r in rows] == [0] * (count - 1) + [last_principal]
        assert "Pay the interest every month from April 1, 2027" in body["explanation"][0]
    else:
        assert len({r["total_fen"] for r in rows[:-1]}) == 1
        assert body["explanation"][0].startswith("Pay 12 monthly instalments of ")


def test_the_offer_of_a_line_has_no_schedule(client: Any, session: Any,
                                             world: w.World) -> None:
    farmer, application = _approved(session, world, "revolving_line", amount_fen=5_000_000,
                                    term_months=36)

    body = _offer(client, f.auth_headers(session, farmer), application,
                  **{"Accept-Language": "en"}).get_json()

    assert (body["kind"], body["installments"], body["maturity_date"]) == (
        "line", [], "2030-03-01")
    assert body["line"] == {"limit_fen": 5_000_000, "drawn_fen": 0,
                            "available_fen": 5_000_000, "frozen": False,
                            "line_ends_on": "2030-03-01", "next_review_on": "2028-03-01"}
    assert "until March 1, 2030" in body["explanation"][0]


def test_who_sees_an_offer(client: Any, session: Any, world: w.World) -> None:
    _farmer, application = _approved(session, world)
    other = w.farmer(session, world)
    session.commit()

    assert _offer(client, f.auth_headers(session, world.reviewer),
                  application).status_code == 200
    assert_problem(_offer(client, f.auth_headers(session, other), application), 404)
    assert_problem(_offer(client, f.auth_headers(session, world.coordinator), application),
                   403, "forbidden")
    assert _offer(client, {}, application).status_code == 401


def test_no_offer_before_approval(client: Any, session: Any, world: w.World) -> None:
    farmer, application = _approved(session, world)
    application.state = states.UNDER_REVIEW
    session.commit()
    assert_problem(_offer(client, f.auth_headers(session, farmer), application), 409,
                   "application-not-approved")


# --- accepting ----------------------------------------------------------------------------------

def _loans(session: Any) -> list[Loan]:
    session.rollback()
    return list(session.scalars(sa.select(Loan).order_by(Loan.id)))


def test_accepting_makes_the_loan_once(client: Any, session: Any, world: w.World) -> None:
    farmer, application = _approved(session, world, term_months=8)
    headers = creating(f.auth_headers(session, farmer))
    url = f"{API}/applications/{application.public_id}/accept"

    response = client.post(url, headers=headers)

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["kind"], body["status"], body["principal_fen"]) == ("term", "accepted",
                                                                    2_000_000)
    assert (body["annual_rate_bp"], body["penalty_rate_bp"], body["day_count"]) == (
        435, 652, "ACT/360")
    assert (body["installments"], body["next_due"], body["maturity_date"]) == ([], None, None)
    assert body["application_id"] == str(application.public_id)
    assert body["farmer"] == {"id": str(farmer.public_id), "name": farmer.name}
    assert "id_number" not in response.get_data(as_text=True)

    replay = client.post(url, headers=headers)  # the same request again: the same answer
    assert (replay.status_code, replay.get_json()["id"]) == (201, body["id"])
    assert_problem(_accept(client, f.auth_headers(session, farmer), application), 409,
                   "offer-already-accepted")

    [loan] = _loans(session)
    assert (loan.county_code, loan.crop, loan.term_months, loan.grace_months) == (
        w.COUNTY, "rice", 8, 0)
    assert loan.terms == application.terms
    assert loan.village_id == farmer.village_id
    events = list(session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "loan.accept")))
    assert [(e.object_id, e.actor) for e in events] == [
        (body["id"], f"farmer:{farmer.public_id}")]
    sms = list(session.scalars(sa.select(OutboxMessage).where(
        OutboxMessage.recipient.in_([farmer.phone, mask_phone(farmer.phone)]))))
    assert len(sms) == 1


def _sms(app: Any, phone: str) -> list[str]:
    """Bodies sent to ``phone`` through the log sender, in order."""
    log = Path(app.instance_path) / "sms.log"
    lines = [line.split("\t", 2) for line in log.read_text(encoding="utf-8").splitlines()]
    return [body for _at, to, body in lines if to == phone]


def test_the_sms_is_in_the_farmers_language(app: Any, client: Any, session: Any,
                                            world: w.World) -> None:
    farmer, application = _approved(session, world)
    farmer.language = "en"
    session.commit()
    assert _accept(client, f.auth_headers(session, farmer), application).status_code == 201
    assert _sms(app, farmer.phone) == [
        "[Nongdai] You accepted the loan of 20,000 yuan. The bank will pay it out to you "
        "soon; we will tell you by SMS."]


def test_accepting_a_line_opens_it(client: Any, session: Any, world: w.World) -> None:
    farmer, application = _approved(session, world, "revolving_line", amount_fen=5_000_000,
                                    term_months=36)

    response = _accept(client, f.auth_headers(session, farmer), application)

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["kind"], body["status"], body["maturity_date"]) == ("line", "active",
                                                                    "2030-03-01")
    assert body["line"] == {"limit_fen": 5_000_000, "drawn_fen": 0,
                            "available_fen": 5_000_000, "frozen": False,
                            "line_ends_on": "2030-03-01", "next_review_on": "2028-03-01"}
    [loan] = _loans(session)
    assert (loan.limit_fen, loan.penalty_rate_bp, loan.principal_outstanding_fen) == (
        5_000_000, 720, 0)


def test_who_may_accept(client: Any, session: Any, world: w.World) -> None:
    farmer, application = _approved(session, world)
    other = w.farmer(session, world)
    session.commit()
    assert_problem(_accept(client, f.auth_headers(session, other), application), 404)
    assert_problem(_accept(client, f.auth_headers(session, world.approver), application), 403)
    assert_problem(_accept(client, f.auth_headers(session, world.coordinator), application),
                   403)
    application.state = states.WITHDRAWN
    session.commit()
    assert_problem(_accept(client, f.auth_headers(session, farmer), application), 409,
                   "application-not-approved")
    assert _loans(session) == []


# --- the loans ----------------------------------------------------------------------------------

def _loan(client: Any, session: Any, world: w.World, farmer: Any,
          product_type: str = "bullet_at_harvest", **kwargs: Any) -> dict[str, Any]:
    _, application = _approved(session, world, product_type, farmer=farmer, **kwargs)
    response = _accept(client, f.auth_headers(session, farmer), application)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_a_loan_shows_its_schedule_what_is_paid_and_what_is_due(
        app: Any, client: Any, session: Any, world: w.World) -> None:
    farmer = w.farmer(session, world)
    made = _loan(client, session, world, farmer, "equal_instalments", amount_fen=600_000,
                 term_months=6)
    session.rollback()
    loan = session.scalars(sa.select(Loan)).one()
    rows = schedules.install(session, loan, date(2027, 3, 1))
    rows[0].principal_paid_fen, rows[0].interest_paid_fen = (rows[0].principal_due_fen,
                                                             rows[0].interest_due_fen)
    rows[0].paid_on = date(2027, 4, 1)
    rows[1].interest_paid_fen = rows[1].interest_due_fen
    loan.status, loan.dpd, loan.bucket = "active", 3, "1-30"
    session.commit()
    app.config["NONGDAI_BUSINESS_DATE"] = "2027-05-04"

    response = client.get(f"{API}/loans/{made['id']}", headers=f.auth_headers(session, farmer))

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert [i["status"] for i in body["installments"]] == ["paid", "overdue"] + ["upcoming"] * 4
    assert body["installments"][0]["paid_on"] == "2027-04-01"
    assert body["next_due"] == {"seq": 2, "due_date": "2027-05-01",
                                "amount_fen": rows[1].principal_due_fen,
                                "principal_fen": rows[1].principal_due_fen, "interest_fen": 0}
    assert (body["status"], body["dpd"], body["bucket"], body["maturity_date"]) == (
        "active", 3, "1-30", "2027-09-01")
    assert set(body["balances"]) == {"principal_outstanding_fen", "interest_outstanding_fen",
                                     "penalty_outstanding_fen", "overpaid_fen",
                                     "total_outstanding_fen"}
    assert "id_number" not in response.get_data(as_text=True)


@pytest.fixture
def spread(client: Any, session: Any, world: w.World) -> dict[str, Any]:
    """Two loans of farmer A, one of B (same village), one of C (the other village)."""
    a, b = w.farmer(session, world), w.farmer(session, world)
    c = w.farmer(session, world, world.other_village)
    session.commit()
    made = {"a1": _loan(client, session, world, a),
            "a2": _loan(client, session, world, a, "revolving_line", amount_fen=3_000_000,
                        term_months=24),
            "b": _loan(client, session, world, b), "c": _loan(client, session, world, c)}
    return {"farmers": {"a": a, "b": b, "c": c}, "loans": made,
            "other_coordinator": w.coordinator_of(session, world.other_village)}


def _ids(client: Any, headers: dict[str, str], **query: Any) -> list[str]:
    response = client.get(f"{API}/loans", headers=headers, query_string=query)
    assert response.status_code == 200, response.get_json()
    return [item["id"] for item in response.get_json()["items"]]


def test_who_sees_which_loans(client: Any, session: Any, world: w.World,
                              spread: dict[str, Any]) -> None:
    farmers = spread["farmers"]
    session.commit()
    ids = {key: loan["id"] for key, loan in spread["loans"].items()}

    assert _ids(client, f.auth_headers(session, farmers["a"])) == [ids["a1"], ids["a2"]]
    assert _ids(client, f.auth_headers(session, world.coordinator)) == [
        ids["a1"], ids["a2"], ids["b"]]
    assert _ids(client, f.auth_headers(session, spread["other_coordinator"])) == [ids["c"]]
    assert _ids(client, f.auth_headers(session, world.reviewer)) == [
        ids["a1"], ids["a2"], ids["b"], ids["c"]]

    for who in (farmers["b"], spread["other_coordinator"]):
        response = client.get(f"{API}/loans/{ids['a1']}", headers=f.auth_headers(session, who))
        assert_problem(response, 404)
    for who in (farmers["a"], world.coordinator, world.approver):
        response = client.get(f"{API}/loans/{ids['a1']}", headers=f.auth_headers(session, who))
        assert response.status_code == 200


def test_loans_filter_and_page(client: Any, session: Any, world: w.World,
                               spread: dict[str, Any]) -> None:
    ids = {key: loan["id"] for key, loan in spread["loans"].items()}
    loan = session.scalars(sa.select(Loan).where(
        Loan.public_id == uuid.UUID(spread["loans"]["b"]["id"]))).one()
    loan.bucket = "31-60"
    session.commit()
    staff = f.auth_headers(session, world.reviewer)

    assert _ids(client, staff, status="active") == [ids["a2"]]
    assert _ids(client, staff, status="accepted") == [ids["a1"], ids["b"], ids["c"]]
    assert _ids(client, staff, bucket="31-60") == [ids["b"]]
    assert _ids(client, staff, village_id=str(world.other_village.public_id)) == [ids["c"]]
    assert _ids(client, f.auth_headers(session, world.coordinator),
                village_id=str(world.other_village.public_id)) == []

    first = client.get(f"{API}/loans", headers=staff, query_string={"limit": 3}).get_json()
    assert [i["id"] for i in first["items"]] == [ids["a1"], ids["a2"], ids["b"]]
    rest = client.get(f"{API}/loans", headers=staff,
                      query_string={"limit": 3, "cursor": first["next_cursor"]}).get_json()
    assert ([i["id"] for i in rest["items"]], rest["next_cursor"]) == ([ids["c"]], None)
    item = first["items"][1]
    assert item["line"]["limit_fen"] == 3_000_000
    assert item["village"]["id"] == str(world.village.public_id)
    assert_problem(client.get(f"{API}/loans", headers=staff, query_string={"status": "late"}),
                   422)


def test_a_concurrent_accept_loses_on_the_unique_application(
        session: Any, world: w.World, monkeypatch: pytest.MonkeyPatch) -> None:
    farmer, application = _approved(session, world)
    actor = Principal(kind="farmer", id=farmer.id, public_id=farmer.public_id,
                      roles=frozenset({"farmer"}))
    first = loans.accept(session, application, actor=actor)
    monkeypatch.setattr(loans, "_existing", lambda *_args: None)  # as if it raced the first

    with pytest.raises(loans.AlreadyAccepted):
        loans.accept(session, application, actor=actor)

    session.commit()  # the savepoint rolled back; the first loan stands
    assert [loan.id for loan in _loans(session)] == [first.id]

"""Insurance-triggered relief: the poll opens one case per claim above the loss ratio and
pauses the loan; staff decide it with four eyes; approval waives penalties in the ledger and
reschedules to the next harvest; rejection unpauses."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from core import jobs
from core.audit import AuditEvent
from core.outbox import OutboxMessage
from lending.ledger.models import JournalEntry, JournalTransaction
from lending.registries import wire
from lending.servicing.relief_models import LoanReschedule, ReliefCase
from tests import factories as f
from tests.servicing import relief_seed as seed
from tests.servicing import world as w

API = w.API


@pytest.fixture
def world(app: Any, session: Any) -> w.World:
    app.config["NONGDAI_BUSINESS_DATE"] = seed.DAY.isoformat()
    return w.build(session)


def run_poll(app: Any, session: Any, day: date = seed.DAY) -> str:
    session.commit()
    with app.app_context():
        return jobs.run("servicing.relief_poll", on=day)


def cases(session: Any) -> list[ReliefCase]:
    session.expire_all()
    return list(session.scalars(sa.select(ReliefCase).order_by(ReliefCase.id)))


def act(client: Any, session: Any, staff: Any, case: ReliefCase, action: str, *,
        reason: str = "核实受灾") -> Any:
    return client.post(f"{API}/relief-cases/{case.public_id}/actions",
                       json={"action": action, "reason": reason},
                       headers=f.auth_headers(session, staff))


# --- the poll ---------------------------------------------------------------------------------

def test_a_claim_above_the_loss_ratio_opens_one_case_and_pauses(app, session, world,
                                                                 registry) -> None:
    loan = seed.active_loan(session, world, penalty_fen=1_234)
    seed.plant_claim(registry, loan.farmer, loss_ratio="0.60")

    assert run_poll(app, session) == "ok"

    [case] = cases(session)
    session.refresh(loan)
    assert loan.relief_paused is True
    assert (case.kind, case.status, case.loan_id) == ("insurance", "proposed", loan.id)
    assert case.claim_reference.endswith(":drought:2027-07-15")
    assert case.claim["loss_ratio"] == "0.60"
    assert case.penalty_at_opening_fen == 1_234
    assert case.proposed_maturity_date == date(2028, 10, 31)  # rice harvest ends 31 October
    assert len(registry.requests("insurance")) == 1
    assert session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "relief_case.open")) == 1


def test_one_registry_call_per_farmer_whatever_their_loans(app, session, world,
                                                            registry) -> None:
    first = seed.active_loan(session, world)
    seed.active_loan(session, world, farmer=first.farmer, repayment_type="equal_instalments",
                     term_months=12)
    seed.plant_claim(registry, first.farmer)

    run_poll(app, session)

    assert len(registry.requests("insurance")) == 1
    assert len(cases(session)) == 2  # both loans finance rice


@pytest.mark.parametrize("claim", [
    {"loss_ratio": "0.29"},  # below NONGDAI_RELIEF_LOSS_RATIO_PCT (30)
    {"crop": "wheat"},  # another crop than the loan's
    {"status": "reported"},  # not assessed yet
    {"event_date": date(2027, 2, 1)},  # before the loan
    {"event_date": date(2027, 8, 2)},  # after the business date
])
def test_claims_that_do_not_qualify_open_nothing(app, session, world, registry,
                                                 claim) -> None:
    loan = seed.active_loan(session, world)
    seed.plant_claim(registry, loan.farmer, **claim)

    run_poll(app, session)

    assert cases(session) == []
    session.refresh(loan)
    assert loan.relief_paused is False


def test_the_threshold_is_inclusive_and_configured(app, session, world, registry) -> None:
    app.config["NONGDAI_RELIEF_LOSS_RATIO_PCT"] = 50
    low = seed.active_loan(session, world)
    high = seed.active_loan(session, world)
    seed.plant_claim(registry, low.farmer, loss_ratio="0.49")
    seed.plant_claim(registry, high.farmer, loss_ratio="0.50")

    run_poll(app, session)

    assert [c.loan_id for c in cases(session)] == [high.id]


def test_a_second_run_the_same_day_and_the_next_opens_nothing_new(app, session, world,
                                                                  registry) -> None:
    loan = seed.active_loan(session, world)
    seed.plant_claim(registry, loan.farmer)
    run_poll(app, session)

    run_poll(app, session)
    run_poll(app, session, date(2027, 8, 2))

    assert len(cases(session)) == 1


def test_without_an_insurance_consent_the_registry_is_not_asked(app, session, world,
                                                                 registry) -> None:
    revoked = seed.active_loan(session, world, consent=False)
    seed.grant(session, revoked.farmer, revoked=True)
    none = seed.active_loan(session, world, consent=False)
    seed.plant_claim(registry, revoked.farmer)
    seed.plant_claim(registry, none.farmer)

    run_poll(app, session)

    assert registry.requests("insurance") == []
    assert cases(session) == []


@pytest.mark.parametrize("fault", [{"mode": "error", "status": 503}, {"mode": "malformed"},
                                   {"mode": "timeout", "hang_ms": 5_000}])
def test_a_registry_failure_changes_nothing_and_is_retried_next_day(app, session, world,
                                                                    registry, fault) -> None:
    app.config["NONGDAI_REGISTRY_TIMEOUT_MS"] = 300
    app.config["NONGDAI_REGISTRY_RETRIES"] = 0
    loan = seed.active_loan(session, world)
    seed.plant_claim(registry, loan.farmer)
    registry.faults("insurance", **fault)

    assert run_poll(app, session) == "ok"

    assert cases(session) == []
    session.refresh(loan)
    assert loan.relief_paused is False
    registry.faults("insurance", "none")
    from lending.registries import clients  # noqa: PLC0415
    clients.reset_breakers()
    run_poll(app, session, date(2027, 8, 2))
    assert len(cases(session)) == 1


def test_a_registry_failure_never_unpauses(app, session, world, registry) -> None:
    loan = seed.active_loan(session, world)
    seed.plant_claim(registry, loan.farmer)
    run_poll(app, session)
    registry.faults("insurance", "error")

    run_poll(app, session, date(2027, 8, 2))

    session.refresh(loan)
    assert loan.relief_paused is True
    assert [c.status for c in cases(session)] == ["proposed"]


def test_a_line_gets_a_case_without_a_new_maturity(app, session, world, registry) -> None:
    loan = seed.active_loan(session, world, kind="line")
    seed.plant_claim(registry, loan.farmer)

    run_poll(app, session)

    [case] = cases(session)
    assert case.proposed_maturity_date is None
    assert case.waive_penalties is True


# --- the four eyes ----------------------------------------------------------------------------

def opened(app: Any, session: Any, world: w.World, registry: Any,
           penalty_fen: int = 8_800) -> tuple[Any, ReliefCase]:
    loan = seed.active_loan(session, world, penalty_fen=penalty_fen)
    seed.plant_claim(registry, loan.farmer)
    run_poll(app, session)
    [case] = cases(session)
    return loan, case


def test_approve_needs_a_recommendation_and_another_approver(app, session, client, world,
                                                             registry) -> None:
    loan, case = opened(app, session, world, registry)

    early = act(client, session, world.approver, case, "approve")
    assert (early.status_code, early.json["code"]) == (409, "recommendation-required")
    recommended = act(client, session, world.approver, case, "recommend")
    assert recommended.status_code == 200, recommended.json
    assert recommended.json["status"] == "recommended"
    same = act(client, session, world.approver, case, "approve")
    assert (same.status_code, same.json["code"]) == (409, "four-eyes")
    reviewer = act(client, session, world.reviewer, case, "approve")
    assert (reviewer.status_code, reviewer.json["code"]) == (403, "relief-approver-required")
    again = act(client, session, world.reviewer, case, "recommend")
    assert (again.status_code, again.json["code"]) == (409, "relief-already-recommended")

    assert [c.status for c in cases(session)] == ["recommended"]
    session.refresh(loan)
    assert loan.relief_paused is True


def test_approve_waives_penalties_and_reschedules_to_the_next_harvest(app, session, client,
                                                                      world, registry) -> None:
    loan, case = opened(app, session, world, registry, penalty_fen=8_800)
    loan.dpd, loan.bucket = 12, "1-30"
    session.commit()
    assert act(client, session, world.reviewer, case, "recommend").status_code == 200

    done = act(client, session, world.approver, case, "approve", reason="旱灾定损六成")

    assert done.status_code == 200, done.json
    body = done.json
    assert body["status"] == "approved"
    assert body["waived_fen"] == 8_800
    assert body["loan"]["maturity_date"] == "2028-10-31"
    assert body["loan"]["relief_paused"] is False
    assert body["reschedule"]["new_schedule"][-1]["due_date"] == "2028-10-31"
    session.expire_all()
    session.refresh(loan)
    assert (loan.penalty_outstanding_fen, loan.relief_paused) == (0, False)
    assert (loan.dpd, loan.bucket, loan.maturity_date) == (0, "current", date(2028, 10, 31))
    [row] = seed.installments(session, loan)
    assert (row.seq, row.due_date, row.principal_due_fen) == (1, date(2028, 10, 31), 1_000_000)
    journal = session.scalars(sa.select(JournalTransaction).where(
        JournalTransaction.kind == "relief_waiver")).one()
    assert journal.reference == str(case.public_id)
    entries = {e.account: (e.amount_fen, e.loan_id) for e in session.scalars(
        sa.select(JournalEntry).where(JournalEntry.journal_id == journal.id))}
    assert entries == {"relief_expense": (8_800, None), "penalty_receivable": (-8_800, loan.id)}
    seed.ledger_consistent(session, loan)
    history = session.scalars(sa.select(LoanReschedule)).one()
    assert history.old_maturity_date == date(2027, 10, 31)
    assert history.old_schedule[0]["due_date"] == "2027-10-31"
    [sms] = session.scalars(sa.select(OutboxMessage)).all()  # the farmer is told
    assert sms.status == "sent"
    assert act(client, session, world.second_approver, case, "reject").status_code == 409


def test_approve_without_penalties_posts_nothing(app, session, client, world,
                                                 registry) -> None:
    loan, case = opened(app, session, world, registry, penalty_fen=0)
    act(client, session, world.reviewer, case, "recommend")

    assert act(client, session, world.approver, case, "approve").status_code == 200

    assert session.scalar(sa.select(sa.func.count()).select_from(JournalTransaction).where(
        JournalTransaction.kind == "relief_waiver")) == 0
    seed.ledger_consistent(session, loan)


def test_reject_unpauses_and_is_audited(app, session, client, world, registry) -> None:
    loan, case = opened(app, session, world, registry)
    act(client, session, world.reviewer, case, "recommend")
    by_recommender = act(client, session, world.reviewer, case, "reject")
    assert by_recommender.status_code == 403  # a reviewer does not decide

    rejected = act(client, session, world.approver, case, "reject", reason="定损不实")

    assert rejected.status_code == 200
    assert rejected.json["status"] == "rejected"
    assert rejected.json["decision_reason"] == "定损不实"
    session.expire_all()
    session.refresh(loan)
    assert (loan.relief_paused, loan.maturity_date) == (False, date(2027, 10, 31))
    assert loan.penalty_outstanding_fen == 8_800
    actions = session.scalars(sa.select(AuditEvent.action).where(
        AuditEvent.object_id == str(case.public_id)).order_by(AuditEvent.id)).all()
    assert actions == ["relief_case.open", "relief_case.recommend", "relief_case.reject"]
    run_poll(app, session, date(2027, 8, 2))  # the claim already had its case
    assert len(cases(session)) == 1


def test_the_recommender_cannot_reject(app, session, client, world, registry) -> None:
    _, case = opened(app, session, world, registry)
    act(client, session, world.approver, case, "recommend")

    refused = act(client, session, world.approver, case, "reject")

    assert (refused.status_code, refused.json["code"]) == (409, "four-eyes")


# --- reading ----------------------------------------------------------------------------------

def test_staff_list_and_read_cases(app, session, client, world, registry) -> None:
    loan, case = opened(app, session, world, registry)
    headers = f.auth_headers(session, world.reviewer)

    listed = client.get(f"{API}/relief-cases?status=proposed", headers=headers)
    other = client.get(f"{API}/relief-cases?status=approved", headers=headers)
    one = client.get(f"{API}/relief-cases/{case.public_id}", headers=headers)

    assert listed.status_code == 200
    assert [c["id"] for c in listed.json["items"]] == [str(case.public_id)]
    assert other.json["items"] == []
    assert one.json["loan"]["id"] == str(loan.public_id)
    assert one.json["claim"]["event"] == "drought"
    assert one.json["proposal"] == {"new_maturity_date": "2028-10-31", "waive_penalties": True,
                                    "penalty_at_opening_fen": 8_800}


def test_farmers_and_coordinators_see_no_cases(app, session, client, world,
                                               registry) -> None:
    loan, case = opened(app, session, world, registry)
    for who in (loan.farmer, world.coordinator):
        headers = f.auth_headers(session, who)
        assert client.get(f"{API}/relief-cases", headers=headers).status_code == 403
        assert client.get(f"{API}/relief-cases/{case.public_id}",
                          headers=headers).status_code == 403


def test_a_case_approved_after_its_proposed_harvest_moves_to_the_next(app, session, client,
                                                                      world, registry) -> None:
    _, case = opened(app, session, world, registry)
    act(client, session, world.reviewer, case, "recommend")
    app.config["NONGDAI_BUSINESS_DATE"] = "2028-11-02"

    done = act(client, session, world.approver, case, "approve")

    assert done.status_code == 200, done.json
    assert done.json["loan"]["maturity_date"] == "2029-10-31"
    assert done.json["proposal"]["new_maturity_date"] == "2029-10-31"


# --- the reference registry's claims ----------------------------------------------------------

def test_the_reference_registry_adds_claims_to_a_holders_policies(registry) -> None:
    holder = "c3" * 32
    registry.plant(holder, insurance={"policies": [{
        "number": "PICC2027-1", "crop": "rice", "insured_area_mu": "8", "sum_insured_yuan":
        "8000.00", "start": "2027-04-01", "end": "2027-11-30", "status": "active"}],
        "claims": []})
    url = f"{registry.url}/_control/holders/{holder}/claims"
    claim = {"event": "flood", "event_date": "2027-07-01", "loss_ratio": 0.6}

    on_policy = requests.post(url, json={**claim, "policy_number": "PICC2027-1"}, timeout=10)
    unknown = requests.post(url, json={**claim, "policy_number": "NOPE"}, timeout=10)
    new_crop = requests.post(url, json={**claim, "crop": "wheat"}, timeout=10)
    bad = requests.post(url, json={**claim, "loss_ratio": 1.5}, timeout=10)

    assert on_policy.status_code == 201
    assert (unknown.status_code, bad.status_code) == (404, 400)
    record = wire.insurance_from_json(new_crop.json())
    assert [p.crop for p in record.policies] == ["rice", "wheat"]
    assert [(c.policy_number, c.loss_ratio) for c in record.claims] == [
        ("PICC2027-1", Decimal("0.60")), (record.policies[1].number, Decimal("0.60"))]
    served = requests.get(f"{registry.insurance_url}/v1/holders/{holder}/policies", timeout=10)
    assert wire.insurance_from_json(served.json()) == record

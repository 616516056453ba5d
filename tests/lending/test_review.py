"""Staff review: the queue, the case, the actions with four eyes and authority, the farmer's
answer, the SMS in the farmer's language, and two approvers racing."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from core.audit import AuditEvent
from core.db import utcnow
from core.outbox import OutboxMessage
from core.people.models import Staff
from core.sms import mask_phone
from lending.applications import states
from lending.applications.models import Application, ReviewAction
from lending.applications.review_models import InformationAnswer
from tests import factories as f
from tests.core.test_people_helpers import API, World, assert_problem, build_world, creating
from tests.lending import review_factories as rf

QUEUE = f"{API}/review/queue"


@pytest.fixture
def world(session: Any) -> World:
    return build_world(session)


@pytest.fixture
def staff(session: Any, world: World) -> dict[str, Staff]:
    rows = {"reviewer": rf.staff(session, "reviewer"), "reviewer2": rf.staff(session, "reviewer"),
            "approver": rf.staff(session, "approver"),
            "approver2": rf.staff(session, "approver", "reviewer")}
    session.commit()
    return rows


def _case(client: Any, headers: dict[str, str], application: Application) -> Any:
    return client.get(f"{API}/review/applications/{application.public_id}", headers=headers)


def _act(client: Any, headers: dict[str, str], application: Application | uuid.UUID,
         action: str, reason: str = "理由", **extra: Any) -> Any:
    target = application if isinstance(application, uuid.UUID) else application.public_id
    return client.post(f"{API}/review/applications/{target}/actions",
                       json={"action": action, "reason": reason, **extra},
                       headers=creating(headers))


def _fresh(session: Any, application: Application) -> Application:
    session.rollback()
    return session.get(Application, application.id)


def _sms(app: Any, phone: str) -> list[str]:
    """Bodies sent to ``phone`` through the log sender, in order."""
    log = Path(app.instance_path) / "sms.log"
    if not log.exists():
        return []
    lines = [line.split("\t", 2) for line in log.read_text(encoding="utf-8").splitlines()]
    return [body for _at, to, body in lines if to == phone]


def _outbox(session: Any, phone: str) -> list[OutboxMessage]:
    session.rollback()
    return list(session.scalars(sa.select(OutboxMessage).where(
        OutboxMessage.recipient.in_([phone, mask_phone(phone)])).order_by(OutboxMessage.id)))


# --- roles --------------------------------------------------------------------------------------

def test_farmers_and_coordinators_cannot_review(client: Any, session: Any, world: World,
                                                staff: dict[str, Staff]) -> None:
    application = rf.application(session, world.farmer_a)
    session.commit()
    for who in (world.farmer_a, world.coordinator_a):
        headers = f.auth_headers(session, who)
        assert_problem(client.get(QUEUE, headers=headers), 403, "forbidden")
        assert_problem(_case(client, headers, application), 403, "forbidden")
        assert_problem(_act(client, headers, application, "recommend_approve"), 403, "forbidden")
    admin = f.auth_headers(session, world.admin)  # reads the queue, but credit is not theirs
    assert client.get(QUEUE, headers=admin).status_code == 200
    assert_problem(_act(client, admin, application, "recommend_approve"), 403, "forbidden")
    assert client.get(QUEUE).status_code == 401


# --- the queue ----------------------------------------------------------------------------------

def test_queue_is_oldest_first_in_cursor_pages(client: Any, session: Any, world: World,
                                               staff: dict[str, Staff]) -> None:
    waiting = [rf.application(session, world.farmer_a, waiting_hours=h) for h in (5, 50, 20)]
    rf.application(session, world.farmer_a, state=states.APPROVED, waiting_hours=100)
    rf.application(session, world.farmer_a, state=states.AWAITING_FIELD_CHECK,
                   waiting_hours=90)
    session.commit()
    headers = f.auth_headers(session, staff["reviewer"])

    first = client.get(QUEUE, query_string={"limit": 2}, headers=headers)
    assert first.status_code == 200, first.get_json()
    page = first.get_json()
    assert [i["id"] for i in page["items"]] == [str(waiting[1].public_id),
                                                str(waiting[2].public_id)]
    second = client.get(QUEUE, query_string={"limit": 2, "cursor": page["next_cursor"]},
                        headers=headers).get_json()
    assert [i["id"] for i in second["items"]] == [str(waiting[0].public_id)]
    assert second["next_cursor"] is None

    bad = client.get(QUEUE, query_string={"cursor": "bm90LWEtY3Vyc29y"}, headers=headers)
    assert assert_problem(bad, 422, "validation-failed")["errors"] == {
        "cursor": ["Invalid cursor."]}


def test_queue_item_shows_why_and_where(client: Any, session: Any, world: World,
                                        staff: dict[str, Staff]) -> None:
    application = rf.application(session, world.farmer_a, waiting_hours=26.5,
                                 reasons=("above_auto_ceiling", "low_score"))
    application.recommended_by_id = staff["reviewer"].id
    application.recommendation = "approve"
    session.commit()
    body = client.get(QUEUE, headers=f.auth_headers(session, staff["approver"])).get_json()
    (item,) = body["items"]
    assert item["farmer"] == {"id": str(world.farmer_a.public_id), "name": "张三",
                              "id_number_masked": world.farmer_a.id_number_masked}
    assert "*" in item["farmer"]["id_number_masked"]
    assert item["village"]["id"] == str(world.village_a.public_id)
    assert item["village"]["name"] == world.village_a.name
    assert item["product"]["code"] == application.product.code
    assert (item["amount_fen"], item["age_hours"], item["outcome"]) == (1_000_000, 26, "refer")
    assert item["reasons"] == ["above_auto_ceiling", "low_score"]
    assert item["recommendation"] == "approve"
    assert item["recommended_by"]["id"] == str(staff["reviewer"].public_id)
    assert item["info_requested"] is False


def test_queue_filters_by_village_reason_age_and_waiting_on_the_farmer(
        client: Any, session: Any, world: World, staff: dict[str, Staff]) -> None:
    old_a = rf.application(session, world.farmer_a, waiting_hours=48,
                           reasons=("data_source_unavailable",))
    new_a = rf.application(session, world.farmer_a, waiting_hours=1,
                           reasons=("above_auto_ceiling",))
    in_b = rf.application(session, world.farmer_b, waiting_hours=30,
                          reasons=("above_auto_ceiling", "claim_recent"))
    # Only the latest decision counts: this one gave the reason before, not any more.
    rf.decision(session, old_a, rules=old_a.policy, reasons=("parcel_pledged",))
    new_a.info_requested = True
    session.commit()
    headers = f.auth_headers(session, staff["reviewer"])

    def ids(**query: Any) -> list[str]:
        response = client.get(QUEUE, query_string=query, headers=headers)
        assert response.status_code == 200, response.get_json()
        return [item["id"] for item in response.get_json()["items"]]

    assert ids(village_id=str(world.village_a.public_id)) == [str(old_a.public_id),
                                                              str(new_a.public_id)]
    assert ids(reason="above_auto_ceiling") == [str(in_b.public_id), str(new_a.public_id)]
    assert ids(reason="claim_recent") == [str(in_b.public_id)]
    assert ids(reason="data_source_unavailable") == []
    assert ids(reason="parcel_pledged") == [str(old_a.public_id)]
    assert ids(min_age_hours=24) == [str(old_a.public_id), str(in_b.public_id)]
    assert ids(info_requested="true") == [str(new_a.public_id)]
    assert ids(info_requested="false", min_age_hours=2,
               village_id=str(world.village_b.public_id)) == [str(in_b.public_id)]
    assert ids(village_id=str(uuid.uuid4())) == []


# --- the case -----------------------------------------------------------------------------------

def test_case_has_all_the_evidence(client: Any, session: Any, world: World,
                                   staff: dict[str, Staff]) -> None:
    from lending.applications import fieldwork  # noqa: PLC0415

    world.farmer_a.identity_status = "pending"
    old = rf.policy(session, version="credit-2026.1")
    new = rf.policy(session, version="credit-2026.2")
    application = rf.application(session, world.farmer_a, rules=old, reasons=None)
    rf.decision(session, application, rules=old, outcome="field_check",
                reasons=("field_check_identity",), minutes_ago=60)
    rf.decision(session, application, rules=new, reasons=("above_auto_ceiling",))
    fieldwork.open_assignment(session, application)
    fieldwork.record_field_check(
        session, client_id=uuid.uuid4(), application=application,
        coordinator_id=world.coordinator_a.id, identity_verified=False,
        parcels=[{"parcel_code": "P-1", "visited": True, "crop_seen": "rice",
                  "estimated_area_mu": 4.5, "latitude": 30.55, "longitude": 120.12,
                  "accuracy_m": 8}],
        notes="稻子长势好", recorded_at=utcnow())
    session.commit()
    headers = f.auth_headers(session, staff["reviewer"])
    _act(client, headers, application, "request_information", reason="请上传土地承包合同")

    response = _case(client, {**headers, "Accept-Language": "en"}, application)
    assert response.status_code == 200, response.get_json()
    case = response.get_json()
    assert case["application"]["id"] == str(application.public_id)
    assert case["application"]["state"] == "under_review"
    assert case["application"]["village"]["id"] == str(world.village_a.public_id)
    assert case["application"]["info_requested"] is True
    assert case["farmer"]["identity_status"] == "pending"
    assert case["farmer"]["id_number_masked"] == world.farmer_a.id_number_masked
    assert [p["parcel_code"] for p in case["parcels"]] == ["P-1", "P-2"]
    assert case["parcels"][1]["declared_area_mu"] == "3.25"
    decision = case["decision"]
    assert (decision["policy_version"], decision["outcome"], decision["score"]) == (
        "credit-2026.2", "refer", 640)
    assert decision["reasons"] == [{
        "code": "above_auto_ceiling", "params": {"ceiling_fen": 5_000_000},
        "explanation": "Amounts above 50,000.00 yuan are decided by a loan officer."}]
    assert decision["factors"][0]["factor"] == "verified_area"
    assert decision["inputs"]["facts_version"] == 1
    assert [d["policy_version"] for d in case["decisions"]] == ["credit-2026.1",
                                                                "credit-2026.2"]
    assert case["decisions"][0]["reasons"] == ["field_check_identity"]
    parcel = case["evidence"]["parcels"][0]
    assert (parcel["code"], parcel["registry_mu"], parcel["insured_mu"], parcel["insured"]) == (
        "P-1", 5.0, 5.0, True)
    assert case["evidence"]["claims"] == [{"event": "drought", "days_ago": 200,
                                           "loss_ratio": 0.35, "status": "paid"}]
    (check,) = case["field_checks"]
    assert check["coordinator"]["id"] == str(world.coordinator_a.public_id)
    assert check["parcels"][0] == {"parcel_code": "P-1", "visited": True, "crop_seen": "rice",
                                   "estimated_area_mu": "4.50", "latitude": 30.55,
                                   "longitude": 120.12, "accuracy_m": 8.0}
    assert [a["status"] for a in case["assignments"]] == ["done"]
    (asked,) = case["history"]
    assert (asked["action"], asked["reason"], asked["staff"]["id"]) == (
        "request_information", "请上传土地承包合同", str(staff["reviewer"].public_id))
    assert case["information"][0]["question"] == "请上传土地承包合同"
    assert case["information"][0]["answer"] is None


def test_case_of_an_unknown_application_is_404(client: Any, session: Any,
                                               staff: dict[str, Staff]) -> None:
    response = client.get(f"{API}/review/applications/{uuid.uuid4()}",
                          headers=f.auth_headers(session, staff["reviewer"]))
    assert_problem(response, 404, "not-found")


# --- actions ------------------------------------------------------------------------------------

def test_one_recommends_another_approves_and_the_farmer_is_told(
        app: Any, client: Any, session: Any, world: World, staff: dict[str, Staff]) -> None:
    world.farmer_a.language = "en"
    application = rf.application(session, world.farmer_a, decision_amount_fen=800_000)
    session.commit()

    recommended = _act(client, f.auth_headers(session, staff["reviewer"]), application,
                       "recommend_approve", reason="收入稳定, 地块已核实")
    assert recommended.status_code == 201, recommended.get_json()
    body = recommended.get_json()
    assert body["application"] == {"id": str(application.public_id), "state": "under_review",
                                   "approved_amount_fen": None, "info_requested": False,
                                   "recommendation": "approve"}
    assert body["staff"]["id"] == str(staff["reviewer"].public_id)

    approved = _act(client, f.auth_headers(session, staff["reviewer2"]), application, "approve",
                    reason="同意")
    assert approved.status_code == 201, approved.get_json()
    assert approved.get_json()["amount_fen"] == 800_000  # the decision's amount by default
    row = _fresh(session, application)
    assert (row.state, row.approved_amount_fen) == ("approved", 800_000)
    assert row.decided_at is not None
    assert row.recommended_by_id == staff["reviewer"].id
    actions = session.scalars(sa.select(ReviewAction).where(
        ReviewAction.application_id == application.id).order_by(ReviewAction.id)).all()
    assert [(a.action, a.staff_id, a.reason) for a in actions] == [
        ("recommend_approve", staff["reviewer"].id, "收入稳定, 地块已核实"),
        ("approve", staff["reviewer2"].id, "同意")]
    events = session.scalars(sa.select(AuditEvent.action).where(
        AuditEvent.action.in_(["review.recommend_approve", "review.approve",
                               "application.approved"])).order_by(AuditEvent.id)).all()
    assert events == ["review.recommend_approve", "application.approved", "review.approve"]
    assert _sms(app, world.farmer_a.phone) == [
        "[Nongdai] Your loan application is approved: 8,000 yuan. "
        "Open the app to see the terms."]


def test_decline_tells_the_farmer_in_their_default_language(
        app: Any, client: Any, session: Any, world: World, staff: dict[str, Staff]) -> None:
    application = rf.application(session, world.farmer_a)
    session.commit()
    assert world.farmer_a.language == "zh_CN"
    assert _act(client, f.auth_headers(session, staff["reviewer"]), application,
                "recommend_decline", reason="近期理赔").status_code == 201
    declined = _act(client, f.auth_headers(session, staff["approver"]), application, "decline",
                    reason="同意拒绝")
    assert declined.status_code == 201, declined.get_json()
    row = _fresh(session, application)
    assert row.state == "declined"
    assert row.decided_at is not None
    (message,) = _outbox(session, world.farmer_a.phone)
    assert message.status == "sent"
    assert len(_sms(app, world.farmer_a.phone)) == 1


def test_the_recommender_never_decides(client: Any, session: Any, world: World,
                                       staff: dict[str, Staff]) -> None:
    application = rf.application(session, world.farmer_a)
    session.commit()
    reviewer = f.auth_headers(session, staff["approver2"])
    assert _act(client, reviewer, application, "recommend_approve").status_code == 201
    assert_problem(_act(client, reviewer, application, "approve"), 409, "four-eyes")
    assert_problem(_act(client, reviewer, application, "decline"), 409, "four-eyes")
    # Someone else recommends later: the first recommender still may not decide.
    assert _act(client, f.auth_headers(session, staff["reviewer"]), application,
                "recommend_decline").status_code == 201
    assert_problem(_act(client, reviewer, application, "approve"), 409, "four-eyes")
    assert _fresh(session, application).state == "under_review"
    assert rf.count(session, AuditEvent, AuditEvent.action == "review.approve") == 0


def test_a_decision_needs_a_recommendation(client: Any, session: Any, world: World,
                                           staff: dict[str, Staff]) -> None:
    application = rf.application(session, world.farmer_a)
    session.commit()
    headers = f.auth_headers(session, staff["approver"])
    assert_problem(_act(client, headers, application, "approve"), 409, "recommendation-required")
    assert_problem(_act(client, headers, application, "decline"), 409, "recommendation-required")


def test_above_the_reviewers_authority_only_an_approver_approves(
        client: Any, session: Any, world: World, staff: dict[str, Staff]) -> None:
    authority = client.application.config["NONGDAI_REVIEWER_AUTHORITY_FEN"]
    assert authority == 5_000_000
    application = rf.application(session, world.farmer_a, amount_fen=8_000_000)
    session.commit()
    assert _act(client, f.auth_headers(session, staff["reviewer"]), application,
                "recommend_approve").status_code == 201
    reviewer2 = f.auth_headers(session, staff["reviewer2"])
    refused = _act(client, reviewer2, application, "approve")
    assert_problem(refused, 403, "approver-required")
    # Within the authority the same reviewer may approve a smaller amount.
    within = _act(client, reviewer2, application, "approve", amount_fen=authority)
    assert within.status_code == 201, within.get_json()
    assert _fresh(session, application).approved_amount_fen == authority

    big = rf.application(session, world.farmer_a, amount_fen=8_000_000)
    session.commit()
    assert _act(client, f.auth_headers(session, staff["reviewer"]), big,
                "recommend_approve").status_code == 201
    ok = _act(client, f.auth_headers(session, staff["approver"]), big, "approve")
    assert ok.status_code == 201, ok.get_json()
    assert _fresh(session, big).approved_amount_fen == 8_000_000


@pytest.mark.parametrize(("action", "extra", "field"), [
    ("approve", {"amount_fen": 1_000_001}, "amount_fen"),  # above the amount requested
    ("approve", {"amount_fen": 0}, "amount_fen"),
    ("recommend_approve", {"amount_fen": 500_000}, "amount_fen"),  # only approvals
    ("approve", {"reason": "   "}, "reason"),
    ("escalate", {}, "action"),
])
def test_invalid_actions_are_422(client: Any, session: Any, world: World, staff: dict[str, Staff],
                                 *, action: str, extra: dict[str, Any], field: str) -> None:
    application = rf.application(session, world.farmer_a)
    application.recommended_by_id = staff["reviewer"].id
    session.commit()
    response = _act(client, f.auth_headers(session, staff["approver"]), application, action,
                    **extra)
    assert field in assert_problem(response, 422, "validation-failed")["errors"]
    assert _fresh(session, application).state == "under_review"


@pytest.mark.parametrize("state", [states.APPROVED, states.DECLINED, states.SUBMITTED,
                                   states.AWAITING_FIELD_CHECK])
def test_only_cases_under_review_take_actions(client: Any, session: Any, world: World,
                                              staff: dict[str, Staff], state: str) -> None:
    application = rf.application(session, world.farmer_a, state=state)
    application.recommended_by_id = staff["reviewer"].id
    session.commit()
    for action in ("recommend_approve", "request_information", "approve"):
        response = _act(client, f.auth_headers(session, staff["approver"]), application, action)
        assert_problem(response, 409, "not-under-review")
    assert rf.count(session, ReviewAction) == 0


def test_an_action_sent_twice_with_one_key_acts_once(client: Any, session: Any, world: World,
                                                     staff: dict[str, Staff]) -> None:
    application = rf.application(session, world.farmer_a)
    session.commit()
    headers = creating(f.auth_headers(session, staff["reviewer"]))
    url = f"{API}/review/applications/{application.public_id}/actions"
    body = {"action": "request_information", "reason": "请补充种植计划"}
    first = client.post(url, json=body, headers=headers)
    again = client.post(url, json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert rf.count(session, ReviewAction) == 1
    assert len(_outbox(session, world.farmer_a.phone)) == 1


def test_two_approvers_at_once_one_wins(app: Any, session: Any, world: World,
                                        staff: dict[str, Staff]) -> None:
    application = rf.application(session, world.farmer_a)
    application.recommended_by_id = staff["reviewer"].id
    application.recommendation = "approve"
    session.commit()
    approvers = [f.auth_headers(session, staff["approver"]),
                 f.auth_headers(session, staff["approver2"])]
    start = threading.Barrier(2)
    answers: list[Any] = []
    target = application.public_id  # the threads do not touch the test's session...
    session.commit()  # ...which must hold no lock while they run

    def approve(headers: dict[str, str]) -> None:
        client = app.test_client()
        start.wait()
        answers.append(_act(client, headers, target, "approve"))

    threads = [threading.Thread(target=approve, args=(h,)) for h in approvers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(a.status_code for a in answers) == [201, 409]
    (lost,) = [a for a in answers if a.status_code == 409]
    assert lost.get_json()["code"] in {"not-under-review", "illegal-transition"}
    assert rf.count(session, ReviewAction, ReviewAction.action == "approve") == 1
    assert rf.count(session, AuditEvent, AuditEvent.action == "application.approved") == 1
    assert _fresh(session, application).state == "approved"
    assert len(_outbox(session, world.farmer_a.phone)) == 1


# --- asking the farmer --------------------------------------------------------------------------

def test_staff_ask_the_farmer_answers(app: Any, client: Any, session: Any, world: World,
                                      staff: dict[str, Staff]) -> None:
    world.farmer_a.language = "en"
    application = rf.application(session, world.farmer_a)
    session.commit()
    reviewer = f.auth_headers(session, staff["reviewer"])
    asked = _act(client, reviewer, application, "request_information",
                 reason="请说明贷款用途的明细")
    assert asked.status_code == 201, asked.get_json()
    assert asked.get_json()["application"]["info_requested"] is True
    assert _sms(app, world.farmer_a.phone) == [
        "[Nongdai] We need more information about your loan application. "
        "Open the app to answer."]

    url = f"{API}/applications/{application.public_id}/information"
    farmer = f.auth_headers(session, world.farmer_a)
    shown = client.get(url, headers=farmer)
    assert shown.status_code == 200, shown.get_json()
    assert shown.get_json()["info_requested"] is True
    (question,) = shown.get_json()["questions"]
    assert (question["question"], question["answer"]) == ("请说明贷款用途的明细", None)
    assert "asked_by" not in question  # staff names stay inside the bank
    assert client.get(url, headers=f.auth_headers(session, world.coordinator_a)).status_code \
        == 200
    assert_problem(client.get(url, headers=f.auth_headers(session, world.farmer_b)), 404)
    assert_problem(client.post(url, json={"answer": "x"},
                               headers=creating(f.auth_headers(session, world.farmer_b))),
                   404, "not-found")
    assert_problem(client.post(url, json={"answer": "x"}, headers=creating(reviewer)),
                   403, "forbidden")
    answered = client.post(url, json={"answer": "  买化肥 3000 元, 种子 2000 元  "},
                           headers=creating(farmer))
    assert answered.status_code == 201, answered.get_json()
    body = answered.get_json()
    assert (body["question"], body["answer"]) == ("请说明贷款用途的明细",
                                                  "买化肥 3000 元, 种子 2000 元")
    assert _fresh(session, application).info_requested is False
    assert rf.count(session, AuditEvent,
                    AuditEvent.action == "application.information_answered") == 1
    assert_problem(client.post(url, json={"answer": "再说一次"}, headers=creating(farmer)),
                   409, "no-information-requested")
    assert rf.count(session, InformationAnswer) == 1
    again = client.get(url, headers=farmer).get_json()
    assert again["info_requested"] is False
    assert again["questions"][0]["answer"] == "买化肥 3000 元, 种子 2000 元"

    case = _case(client, reviewer, application).get_json()
    (exchange,) = case["information"]
    assert exchange["answer"] == "买化肥 3000 元, 种子 2000 元"
    assert exchange["asked_by"]["id"] == str(staff["reviewer"].public_id)
    assert exchange["answered_at"] is not None
    assert case["application"]["info_requested"] is False


def test_a_farmer_cannot_answer_when_nothing_was_asked(client: Any, session: Any,
                                                       world: World) -> None:
    application = rf.application(session, world.farmer_a)
    session.commit()
    response = client.post(f"{API}/applications/{application.public_id}/information",
                           json={"answer": "你好"},
                           headers=creating(f.auth_headers(session, world.farmer_a)))
    assert_problem(response, 409, "no-information-requested")


def test_deciding_closes_an_open_question(client: Any, session: Any, world: World,
                                          staff: dict[str, Staff]) -> None:
    application = rf.application(session, world.farmer_a)
    session.commit()
    assert _act(client, f.auth_headers(session, staff["reviewer"]), application,
                "request_information").status_code == 201
    assert _act(client, f.auth_headers(session, staff["reviewer"]), application,
                "recommend_decline").status_code == 201
    assert _act(client, f.auth_headers(session, staff["approver"]), application,
                "decline").status_code == 201
    row = _fresh(session, application)
    assert (row.state, row.info_requested) == ("declined", False)

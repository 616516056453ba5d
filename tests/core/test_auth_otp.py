"""Farmers' sign-in with a one-time SMS code: POST /auth/otp and /auth/otp/verify."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa

from core.audit import AuditEvent
from core.auth import keys, otp
from core.auth.errors import OtpInvalid
from core.auth.models import OtpChallenge
from core.db import utcnow
from core.outbox import OutboxMessage
from core.ratelimit import RateLimitCounter
from tests import factories

PROBLEM = "application/problem+json"


class CapturingSender:
    """An SMS gateway stand-in that keeps what it was asked to send."""

    sent: ClassVar[list[tuple[str, str]]] = []

    def send(self, phone: str, body: str) -> None:
        self.sent.append((phone, body))


@pytest.fixture
def sms(app: Any) -> list[tuple[str, str]]:
    CapturingSender.sent = []
    app.config["NONGDAI_SMS_SENDER"] = f"{__name__}:CapturingSender"
    return CapturingSender.sent


@pytest.fixture
def farmer(session: Any) -> Any:
    row = factories.farmer(session, factories.village(session), phone="13800001111")
    session.commit()
    return row


def post(client: Any, session: Any, url: str, body: dict[str, Any], **kwargs: Any) -> Any:
    session.commit()  # end the test's transaction: the request's side transactions need that
    return client.post(url, json=body, **kwargs)


def code_in(body: str) -> str:
    match = re.search(r"验证码 (\d{6})", body)
    assert match, body
    return match.group(1)


def request_code(client: Any, session: Any, sms: list[tuple[str, str]],
                 phone: str = "13800001111") -> str:
    response = post(client, session, "/api/v1/auth/otp", {"phone": phone})
    assert response.status_code == 202
    return code_in(sms[-1][1])


def verify(client: Any, session: Any, code: str, phone: str = "13800001111",
           **kwargs: Any) -> Any:
    return post(client, session, "/api/v1/auth/otp/verify", {"phone": phone, "code": code},
                **kwargs)


ENGLISH = {"Accept-Language": "en"}


def test_otp_sign_in_happy_path(client, session, sms, farmer):
    response = post(client, session, "/api/v1/auth/otp", {"phone": "13800001111"})
    assert response.status_code == 202
    assert response.get_json() == {"expires_in": 300}
    assert len(sms) == 1
    phone, body = sms[0]
    assert phone == "13800001111"
    assert body.startswith("【农贷】验证码 ")
    code = code_in(body)

    response = verify(client, session, code)
    assert response.status_code == 200, response.get_json()
    tokens = response.get_json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 900
    assert tokens["refresh_token"]

    me = client.get("/api/v1/auth/me",
                    headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200
    body = me.get_json()
    assert body["kind"] == "farmer"
    assert body["roles"] == ["farmer"]
    assert body["id"] == str(farmer.public_id)
    assert body["village_ids"] == [str(farmer.village.public_id)]
    assert body["device_id"] is None


def test_the_sms_is_chinese_by_default(client, session, sms, farmer):
    code = request_code(client, session, sms)

    assert sms[-1][1] == f"【农贷】验证码 {code}，5分钟内有效，请勿告诉他人。"  # noqa: RUF001


def test_the_sms_is_in_the_language_of_the_phone_that_asked(client, session, sms, farmer):
    response = post(client, session, "/api/v1/auth/otp", {"phone": "13800001111"},
                    headers={"Accept-Language": "en-GB,en;q=0.9"})

    assert response.status_code == 202
    code = re.search(r"code is (\d{6})", sms[-1][1])
    assert code, sms[-1][1]
    assert sms[-1][1] == (f"[Nongdai] Your code is {code.group(1)}, valid for 5 minutes. "
                          "Do not tell it to anyone.")
    assert verify(client, session, code.group(1)).status_code == 200


def test_a_one_minute_code_says_minute(app, client, session, sms, farmer):
    app.config["NONGDAI_OTP_SECONDS"] = 60

    post(client, session, "/api/v1/auth/otp", {"phone": "13800001111"}, headers=ENGLISH)

    assert "valid for 1 minute." in sms[-1][1]


def test_code_is_single_use(client, session, sms, farmer):
    code = request_code(client, session, sms)
    assert verify(client, session, code).status_code == 200
    again = verify(client, session, code)
    assert again.status_code == 401
    assert again.get_json()["code"] == "otp-invalid"


def test_delivered_message_keeps_no_code(client, session, sms, farmer):
    code = request_code(client, session, sms)
    message = session.scalars(sa.select(OutboxMessage)).one()
    assert message.status == "sent"
    assert message.body == "[delivered]"
    assert message.recipient == "138****1111"
    challenge = session.scalars(sa.select(OtpChallenge)).one()
    assert code not in challenge.code_hash
    assert "13800001111" not in challenge.phone_hash


def test_audit_records_masked_phone_only(client, session, sms, farmer):
    code = request_code(client, session, sms)
    assert verify(client, session, code).status_code == 200
    events = session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id)).all()
    assert [e.action for e in events] == ["auth.otp_requested", "auth.signed_in"]
    assert events[0].summary["phone"] == "138****1111"
    assert events[1].actor == f"farmer:{farmer.public_id}"
    for event in events:
        assert code not in str(event.summary)
        assert "13800001111" not in str(event.summary)


def test_expired_code_is_refused(client, session, sms, farmer):
    code = request_code(client, session, sms)
    challenge = session.scalars(sa.select(OtpChallenge)).one()
    challenge.expires_at = utcnow() - timedelta(seconds=1)
    response = verify(client, session, code)
    assert response.status_code == 401
    assert response.mimetype == PROBLEM
    assert response.get_json()["code"] == "otp-expired"


def test_five_wrong_codes_lock_the_challenge(client, session, sms, farmer):
    code = request_code(client, session, sms)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for left in (4, 3, 2, 1, 0):
        response = verify(client, session, wrong, headers=ENGLISH)
        assert response.status_code == 401
        problem = response.get_json()
        assert problem["code"] == "otp-invalid"
        tries = {1: "1 try left", 0: "no tries left"}.get(left, f"{left} tries left")
        assert tries in problem["detail"]
    response = verify(client, session, code)
    assert response.status_code == 401
    assert response.get_json()["code"] == "otp-locked"
    challenge = session.scalars(sa.select(OtpChallenge)).one()
    assert challenge.attempts == 6  # counted although every request was rolled back
    assert challenge.consumed_at is None


def test_a_new_code_supersedes_the_old_one(client, session, sms, farmer):
    first = request_code(client, session, sms)
    second = request_code(client, session, sms)
    closed = session.scalars(sa.select(OtpChallenge.consumed_at).order_by(OtpChallenge.id)).all()
    assert closed[0] is not None
    assert closed[1] is None
    if first != second:  # (one time in a million the two codes are the same)
        assert verify(client, session, first).status_code == 401
    assert verify(client, session, second).status_code == 200


def two_codes(client: Any, session: Any, sms: list[tuple[str, str]]) -> tuple[str, str]:
    """An earlier code and the one that replaced it (asked again in the one-in-a-million case
    where both are the same)."""
    first = request_code(client, session, sms)
    second = request_code(client, session, sms)
    while second == first:
        second = request_code(client, session, sms)
    return first, second


def test_the_code_of_a_replaced_sms_says_it_was_replaced(client, session, sms, farmer):
    first, second = two_codes(client, session, sms)
    response = verify(client, session, first, headers=ENGLISH)
    assert response.status_code == 401
    assert response.mimetype == PROBLEM
    problem = response.get_json()
    assert problem["code"] == "otp-replaced"
    assert problem["title"] == ("This code was replaced by a newer one; "
                                "use the code in the latest SMS")
    assert "4 tries left" in problem["detail"]
    session.rollback()
    newest = session.scalars(sa.select(OtpChallenge).order_by(OtpChallenge.id.desc())).first()
    assert newest.attempts == 1  # the try still counts
    assert verify(client, session, second).status_code == 200
    session.rollback()
    reasons = session.scalars(sa.select(OtpChallenge.closed_reason)
                              .order_by(OtpChallenge.id)).all()
    assert reasons[-1] == "used"
    assert set(reasons[:-1]) == {"replaced"}


def test_a_wrong_code_is_still_wrong_after_a_replacement(client, session, sms, farmer):
    first, second = two_codes(client, session, sms)
    wrong = next(c for c in ("000000", "111111", "222222") if c not in (first, second))
    assert verify(client, session, wrong).get_json()["code"] == "otp-invalid"


def test_a_replaced_code_past_its_lifetime_is_just_wrong(client, session, sms, farmer):
    first, _ = two_codes(client, session, sms)
    old = session.scalars(sa.select(OtpChallenge).order_by(OtpChallenge.id)).first()
    old.expires_at = utcnow() - timedelta(seconds=1)
    session.commit()
    assert verify(client, session, first).get_json()["code"] == "otp-invalid"


def test_unknown_numbers_have_replaced_challenges_too(client, session, sms, farmer):
    """A challenge is made for unknown numbers too, so ``otp-replaced`` tells no account."""
    phone = "13900002222"
    for _ in range(2):
        assert post(client, session, "/api/v1/auth/otp", {"phone": phone}).status_code == 202
    session.rollback()
    challenges = session.scalars(sa.select(OtpChallenge).order_by(OtpChallenge.id)).all()
    assert [c.closed_reason for c in challenges] == ["replaced", None]
    assert challenges[0].phone_hash == keys.phone_hash(phone)


def test_unknown_phone_gets_the_same_answer_and_no_sms(client, session, sms, farmer):
    known = post(client, session, "/api/v1/auth/otp", {"phone": "13800001111"})
    unknown = post(client, session, "/api/v1/auth/otp", {"phone": "13900002222"})
    assert unknown.status_code == known.status_code == 202
    assert unknown.get_json() == known.get_json()
    assert [phone for phone, _ in sms] == ["13800001111"]
    assert session.scalar(sa.select(sa.func.count()).select_from(OutboxMessage)) == 1

    wrong_known = verify(client, session, "000000").get_json()
    wrong_unknown = verify(client, session, "000000", phone="13900002222").get_json()
    assert wrong_unknown["code"] == wrong_known["code"] == "otp-invalid"
    assert wrong_unknown["detail"] == wrong_known["detail"]


def test_inactive_farmer_gets_no_sms(client, session, sms, farmer):
    farmer.is_active = False
    response = post(client, session, "/api/v1/auth/otp", {"phone": "13800001111"})
    assert response.status_code == 202
    assert sms == []


@pytest.mark.parametrize("phone", ["23800001111", "1380000111", "138000011112", "1380000111a"])
def test_phone_must_be_eleven_digits_starting_with_one(client, session, phone):
    response = post(client, session, "/api/v1/auth/otp", {"phone": phone})
    assert response.status_code == 422
    assert response.get_json()["errors"]["phone"]


def test_rate_limited_per_phone(app, client, session, sms, farmer):
    app.config["NONGDAI_OTP_PER_PHONE_PER_HOUR"] = 2
    for n in range(2):
        response = post(client, session, "/api/v1/auth/otp", {"phone": "13800001111"},
                        environ_base={"REMOTE_ADDR": f"10.0.0.{n + 1}"})
        assert response.status_code == 202
    response = post(client, session, "/api/v1/auth/otp", {"phone": "13800001111"},
                    environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert response.status_code == 429
    assert response.mimetype == PROBLEM
    assert response.get_json()["code"] == "rate-limited"
    assert 0 < int(response.headers["Retry-After"]) <= 3600
    assert len(sms) == 2
    other = post(client, session, "/api/v1/auth/otp", {"phone": "13800003333"},
                 environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 202


def test_rate_limited_per_client_address(app, client, session, sms):
    app.config["NONGDAI_OTP_PER_CLIENT_PER_HOUR"] = 2
    crowd = {"REMOTE_ADDR": "10.1.1.1"}
    for phone in ("13800000001", "13800000002"):
        response = post(client, session, "/api/v1/auth/otp", {"phone": phone}, environ_base=crowd)
        assert response.status_code == 202
    response = post(client, session, "/api/v1/auth/otp", {"phone": "13800000003"},
                    environ_base=crowd)
    assert response.status_code == 429
    assert response.mimetype == PROBLEM
    assert int(response.headers["Retry-After"]) > 0
    elsewhere = post(client, session, "/api/v1/auth/otp", {"phone": "13800000003"},
                     environ_base={"REMOTE_ADDR": "10.1.1.2"})
    assert elsewhere.status_code == 202
    buckets = session.scalars(sa.select(RateLimitCounter.bucket)).all()
    assert not any("1380000000" in bucket or "10.1.1" in bucket for bucket in buckets)


def test_no_code_reaches_the_logs(client, session, farmer, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    response = post(client, session, "/api/v1/auth/otp", {"phone": "13800001111"})
    assert response.status_code == 202
    sms_log = Path(client.application.instance_path) / "sms.log"
    code = code_in(sms_log.read_text(encoding="utf-8"))
    assert verify(client, session, code).status_code == 200

    captured = capsys.readouterr()
    everything = caplog.text + captured.out + captured.err + "".join(
        str(vars(record)) for record in caplog.records)
    assert code not in everything
    assert "13800001111" not in everything
    sent = [r for r in caplog.records if r.getMessage() == "sms sent"]
    assert len(sent) == 1
    assert sent[0].to == "138****1111"


def test_only_one_of_two_parallel_verifications_wins(client, session, sms, farmer):
    request_code(client, session, sms)
    attempt = otp._count_attempt(keys.phone_hash("13800001111"))
    challenge = session.scalars(sa.select(OtpChallenge)).one()
    challenge.consumed_at = utcnow()  # the other verification committed first
    session.commit()
    with pytest.raises(OtpInvalid):
        otp._consume(session, attempt, utcnow())

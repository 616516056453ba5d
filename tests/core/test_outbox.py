"""The SMS outbox: delivery after commit, retries with backoff, nothing secret left at rest."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa

from core import jobs, outbox, sms
from core.db import utcnow
from core.outbox import OutboxMessage

BODY = "【农贷】验证码 246810，5分钟内有效，请勿告诉他人。"  # noqa: RUF001 - Chinese punctuation


class Gateway:
    """Sender stand-in: records messages, or fails while ``failing`` is set."""

    sent: ClassVar[list[tuple[str, str]]] = []
    failing: ClassVar[bool] = False

    def send(self, phone: str, body: str) -> None:
        if self.failing:
            raise ConnectionError(f"gateway down while sending {body}")
        self.sent.append((phone, body))


@pytest.fixture
def gateway(app: Any) -> type[Gateway]:
    Gateway.sent, Gateway.failing = [], False
    app.config["NONGDAI_SMS_SENDER"] = f"{__name__}:Gateway"
    return Gateway


def queued(session: Any, **kwargs: Any) -> int:
    message_id = outbox.queue_sms(session, "13800001111", BODY, **kwargs).id
    session.commit()
    return message_id


def row(session: Any, message_id: int) -> Any:
    """The message's columns as plain values (no lazy loads later)."""
    table = OutboxMessage.__table__
    values = session.execute(sa.select(table).where(table.c.id == message_id)).one()
    session.commit()  # end the read so that the next dispatch may open side transactions
    return values


def make_due(session: Any, message_id: int) -> None:
    session.get(OutboxMessage, message_id).next_attempt_at = utcnow() - timedelta(seconds=1)
    session.commit()


def test_dispatch_sends_and_forgets_the_body(session, gateway):
    message_id = queued(session)
    assert outbox.dispatch(message_id) == "sent"
    assert gateway.sent == [("13800001111", BODY)]
    message = row(session, message_id)
    assert (message.status, message.body, message.recipient) == (
        "sent", "[delivered]", "138****1111")
    assert message.sent_at is not None
    assert message.attempts == 1


def test_a_message_is_sent_once(session, gateway):
    message_id = queued(session)
    assert outbox.dispatch(message_id) == "sent"
    assert outbox.dispatch(message_id) == "skipped"
    assert outbox.dispatch_due() == 0
    assert len(gateway.sent) == 1


def test_failures_back_off_exponentially_then_give_up(app, session, gateway):
    app.config["NONGDAI_OUTBOX_MAX_ATTEMPTS"] = 3
    gateway.failing = True
    message_id = queued(session)

    before = utcnow()
    assert outbox.dispatch(message_id) == "pending"
    first = row(session, message_id)
    assert first.attempts == 1
    assert first.next_attempt_at >= before + timedelta(seconds=30)
    assert first.last_error.startswith("ConnectionError")
    assert "246810" not in first.last_error
    assert outbox.dispatch(message_id) == "skipped"  # not due yet

    make_due(session, message_id)
    before = utcnow()
    assert outbox.dispatch(message_id) == "pending"
    second = row(session, message_id)
    assert second.attempts == 2
    assert second.next_attempt_at >= before + timedelta(seconds=60)

    make_due(session, message_id)
    assert outbox.dispatch(message_id) == "failed"
    last = row(session, message_id)
    assert (last.status, last.body, last.recipient) == ("failed", "[undelivered]", "138****1111")
    assert gateway.sent == []


def test_the_job_retries_due_messages(session, gateway):
    gateway.failing = True
    message_id = queued(session)
    outbox.dispatch(message_id)
    gateway.failing = False
    assert outbox.dispatch_due() == 0  # backing off
    make_due(session, message_id)
    assert outbox.dispatch_due() == 1
    assert row(session, message_id).status == "sent"
    assert gateway.sent == [("13800001111", BODY)]


def test_expired_messages_are_not_sent(session, gateway):
    message_id = queued(session, expires_at=utcnow() - timedelta(seconds=1))
    assert outbox.dispatch(message_id) == "failed"
    assert gateway.sent == []
    assert row(session, message_id).body == "[undelivered]"


def test_the_scheduled_job_delivers(app, session, gateway):
    message_id = queued(session)
    assert app.extensions["nongdai_jobs"]["outbox.dispatch"].trigger == {"seconds": 30}
    assert jobs.run("outbox.dispatch") == "ok"
    assert gateway.sent == [("13800001111", BODY)]
    assert row(session, message_id).status == "sent"


def test_log_sender_writes_the_sms_file_not_the_app_log(app, session, caplog):
    message_id = queued(session)
    assert outbox.dispatch(message_id) == "sent"
    lines = (Path(app.instance_path) / "sms.log").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    assert lines[0].split("\t")[1:] == ["13800001111", BODY]
    assert "246810" not in caplog.text


def test_sender_setting_is_checked():
    with pytest.raises(ValueError, match=r"package\.module:ClassName"):
        sms.load_sender("not-a-sender", "/tmp")  # noqa: S108 - never written to


@pytest.mark.parametrize(("phone", "masked"), [("13800001111", "138****1111"),
                                               ("1234", "****")])
def test_mask_phone(phone, masked):
    assert sms.mask_phone(phone) == masked

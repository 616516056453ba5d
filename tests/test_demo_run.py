"""The README's run command: ``python app.py`` migrates, seeds the demo county and serves it with
waitress (one process, threads, the job scheduler inside), and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from core import demo, jobs
from core.db import db
from core.demo import DEMO_PASSWORD, FARMERS, farmer_id_numbers
from tests import servers


def _env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "NONGDAI_INSTANCE_PATH": str(tmp_path)}
    env.pop("NONGDAI_DATABASE_URL", None)
    return env


def _sms_code(sms_log: Path, phone: str) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if sms_log.exists():
            lines = [line for line in sms_log.read_text().splitlines() if phone in line]
            if lines:
                return "".join(ch for ch in lines[-1].split(phone, 1)[1] if ch.isdigit())[:6]
        time.sleep(0.1)
    raise AssertionError("no SMS was written")


def _farmer_signs_in(base: str, sms_log: Path) -> None:
    phone = FARMERS[0][1]
    assert requests.post(f"{base}/api/v1/auth/otp", json={"phone": phone},
                         timeout=10).status_code == 202
    verify = requests.post(f"{base}/api/v1/auth/otp/verify", timeout=10,
                           json={"phone": phone, "code": _sms_code(sms_log, phone)})
    assert verify.status_code == 200, verify.text


@pytest.mark.slow
def test_python_app_py_serves_the_seeded_demo(tmp_path: Path) -> None:
    with servers.app_py(env=_env(tmp_path)) as server:
        login = requests.post(server.url("/api/v1/auth/login"), timeout=10,
                              json={"username": "admin", "password": DEMO_PASSWORD})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        villages = requests.get(server.url("/api/v1/villages"), headers=headers, timeout=10)
        assert len(villages.json()["items"]) == 5
        _farmer_signs_in(server.base, tmp_path / "sms.log")
        root = requests.get(server.url("/"), timeout=10)
        status = servers.stop(server.proc)
        output = server.output()

    assert status == 0, output  # SIGTERM stops waitress and the scheduler cleanly
    assert "Demo logins" in output
    assert f"{server.base}/api/docs" in output
    assert "demo data: places and people seeded" in output
    assert "demo data: credit policy" in output
    assert "demo data: loan products" in output
    assert "reference registries" in output
    assert all(number in output for number in farmer_id_numbers())
    assert (root.status_code, root.headers["Content-Type"]) == (404, "application/problem+json")
    assert "/api/docs" in root.json()["detail"]


@pytest.mark.slow
def test_the_embedded_default_is_waitress_with_its_scheduler(tmp_path: Path) -> None:
    with servers.app_py("--no-demo", env=_env(tmp_path)) as server:
        answer = requests.get(server.url("/healthz"), timeout=10)
        servers.stop(server.proc)
        output = server.output()

    assert answer.headers["Server"] == "nongdai"  # waitress's ident, set by core.demo.serve
    assert "development server" not in output.lower()
    assert "scheduler: " in output
    assert "jobs in this process" in output
    assert "Nongdai stopped." in output


@pytest.mark.slow
def test_second_start_keeps_the_data_and_no_demo_skips_seeding(tmp_path: Path) -> None:
    with servers.app_py("--no-demo", env=_env(tmp_path)) as server:
        servers.stop(server.proc)
        output = server.output()

    assert "demo data" not in output
    assert (tmp_path / "nongdai.sqlite3").exists()


def test_the_embedded_scheduler_runs_registered_jobs_through_their_lease(app: Any) -> None:
    ran = threading.Event()
    jobs.register(app, jobs.Job("test.tick", lambda *_: ran.set(), {"seconds": 0.2}))

    scheduler = demo.start_scheduler(app)
    try:
        scheduled = {job.id for job in scheduler.get_jobs()}
        assert ran.wait(timeout=20)
    finally:
        scheduler.shutdown(wait=True)

    assert scheduled == set(app.extensions["nongdai_jobs"])
    with app.app_context(), db.engine.connect() as conn:
        status = conn.scalar(sa.select(jobs.JobLease.last_status)
                             .where(jobs.JobLease.name == "test.tick"))
    assert status == "ok"

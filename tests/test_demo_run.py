"""The README's run command: ``python app.py`` migrates, seeds the demo county and serves it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from core.demo import DEMO_PASSWORD, FARMERS
from tests.test_gunicorn import ROOT, _free_port, _wait_for


def _start(tmp_path: Path, port: int, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NONGDAI_INSTANCE_PATH": str(tmp_path), "NONGDAI_PORT": str(port)}
    env.pop("NONGDAI_DATABASE_URL", None)
    return subprocess.Popen([sys.executable, "app.py", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> str:
    proc.terminate()
    out, _ = proc.communicate(timeout=15)
    return out.decode()


def _sms_code(sms_log: Path, phone: str) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if sms_log.exists():
            lines = [line for line in sms_log.read_text().splitlines() if phone in line]
            if lines:
                return "".join(ch for ch in lines[-1].split(phone, 1)[1] if ch.isdigit())[:6]
        time.sleep(0.1)
    raise AssertionError("no SMS was written")


@pytest.mark.slow
def test_python_app_py_serves_the_seeded_demo(tmp_path: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start(tmp_path, port)
    try:
        assert _wait_for(f"{base}/readyz", proc).status_code == 200
        login = requests.post(f"{base}/api/v1/auth/login", timeout=5,
                              json={"username": "admin", "password": DEMO_PASSWORD})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        villages = requests.get(f"{base}/api/v1/villages", headers=headers, timeout=5)
        assert len(villages.json()["items"]) == 5
        phone = FARMERS[0][1]
        assert requests.post(f"{base}/api/v1/auth/otp", json={"phone": phone},
                             timeout=5).status_code == 202
        code = _sms_code(tmp_path / "sms.log", phone)
        verify = requests.post(f"{base}/api/v1/auth/otp/verify", timeout=5,
                               json={"phone": phone, "code": code})
        assert verify.status_code == 200, verify.text
    finally:
        output = _stop(proc)
    assert "Demo logins" in output
    assert f"{base}/api/docs" in output
    assert "demo data: seeded" in output


@pytest.mark.slow
def test_second_start_keeps_the_data_and_no_demo_skips_seeding(tmp_path: Path) -> None:
    port = _free_port()
    proc = _start(tmp_path, port, "--no-demo")
    try:
        _wait_for(f"http://127.0.0.1:{port}/readyz", proc)
    finally:
        output = _stop(proc)
    assert "demo data" not in output
    assert (tmp_path / "nongdai.sqlite3").exists()

"""Production shape: gunicorn serving ``app:create_app()`` on a loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import fresh_database_url

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, proc: subprocess.Popen[bytes], seconds: float = 30) -> requests.Response:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gunicorn exited with {proc.returncode}")
        try:
            return requests.get(url, timeout=2)
        except requests.ConnectionError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {seconds} s")


@pytest.mark.slow
def test_gunicorn_serves_healthz_and_readyz(database: str, tmp_path: Path) -> None:
    url = fresh_database_url(database, tmp_path)
    port = _free_port()
    env = {**os.environ, "NONGDAI_DATABASE_URL": url, "NONGDAI_INSTANCE_PATH": str(tmp_path),
           "NONGDAI_SEED_DEMO": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}",
         "app:create_app()"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        health = _wait_for(f"http://127.0.0.1:{port}/healthz", proc)
        assert health.status_code == 200
        assert health.json() == {"status": "ok"}
        ready = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        missing = requests.get(f"http://127.0.0.1:{port}/api/v1/nowhere", timeout=5)
        assert missing.status_code == 404
        assert missing.headers["Content-Type"] == "application/problem+json"
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        if proc.stdout:
            proc.stdout.close()

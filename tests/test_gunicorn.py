"""Production shape: gunicorn serving ``app:create_app()`` on a loopback port."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from core import serving
from tests import servers
from tests.conftest import fresh_database_url


def _env(url: str, instance: Path) -> dict[str, str]:
    return {**os.environ, "NONGDAI_DATABASE_URL": url, "NONGDAI_INSTANCE_PATH": str(instance),
            "NONGDAI_SEED_DEMO": "0"}


@pytest.mark.slow
def test_gunicorn_serves_healthz_and_readyz(database: str, tmp_path: Path) -> None:
    env = _env(fresh_database_url(database, tmp_path), tmp_path)
    with servers.gunicorn("app:create_app()", env=env, config=servers.PRODUCTION) as server:
        health = requests.get(server.url("/healthz"), timeout=10)
        assert health.status_code == 200
        assert health.json() == {"status": "ok"}
        assert health.headers["Connection"] == "close"  # core/serving.py: keepalive = 0
        ready = requests.get(server.url("/readyz"), timeout=10)
        assert ready.status_code == 200, ready.text
        missing = requests.get(server.url("/api/v1/nowhere"), timeout=10)
        assert missing.status_code == 404
        assert missing.headers["Content-Type"] == "application/problem+json"


def test_the_connection_cap_follows_the_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(serving.THREADS_ENV, "6")
    try:
        settings = importlib.reload(serving)
        assert (settings.worker_class, settings.threads, settings.keepalive) == ("gthread", 6, 0)
        assert settings.worker_connections == 6 + settings.QUEUED_PER_WORKER
        assert {name for name in vars(settings) if name.islower() and not name.startswith("_")
                } - {"annotations", "os"} == set(settings.SETTINGS)
    finally:
        monkeypatch.delenv(serving.THREADS_ENV)
        importlib.reload(serving)
    assert serving.threads == 4


# --- the helper itself: deadlines and stopping ---------------------------------------------------

_SILENT_LISTENER = """
import socket, time
sock = socket.socket()
sock.bind(("127.0.0.1", {port}))
sock.listen()
time.sleep(60)  # accepts connections (the kernel does) and never answers: a starting worker
"""


@pytest.mark.slow
def test_a_server_that_accepts_but_never_answers_fails_at_the_deadline() -> None:
    port = servers.free_port()
    command = [sys.executable, "-c", _SILENT_LISTENER.format(port=port)]
    started = time.monotonic()

    with pytest.raises(servers.ServerFailed, match="did not answer within 3 s"), \
            servers.serve(command, port, seconds=3):
        pass  # pragma: no cover - never reached

    assert time.monotonic() - started < 15


@pytest.mark.slow
def test_an_early_exit_is_reported_with_the_output() -> None:
    port = servers.free_port()
    command = [sys.executable, "-c", "print('cannot start: no config'); raise SystemExit(3)"]

    with pytest.raises(servers.ServerFailed, match="exited") as failure, \
            servers.serve(command, port, seconds=30):
        pass  # pragma: no cover - never reached

    assert "cannot start: no config" in str(failure.value)


_GROUP = """
import subprocess, sys, time, signal
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a leader that will not stop politely
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print(child.pid, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie (in a container, pid 1 may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
def test_stop_kills_the_whole_group_even_when_sigterm_is_ignored() -> None:
    proc = subprocess.Popen([sys.executable, "-c", _GROUP], stdout=subprocess.PIPE,
                            start_new_session=True)
    assert proc.stdout is not None
    child = int(proc.stdout.readline())

    status = servers.stop(proc, grace=0.5)

    assert status == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:  # reparented: init reaps it
        time.sleep(0.05)
    assert not _alive(child)
    proc.stdout.close()

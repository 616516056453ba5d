"""Start a server process, wait until it answers, and stop it in every path.

Shared by the tests that run the production shape (gunicorn, ``python app.py``) and by the
benchmarks. Two lessons are built in:

- Readiness is a *deadline*, not a count of connection errors. gunicorn's master binds the port
  before its workers have imported the app, so an early request is accepted and then waits:
  a ``ReadTimeout``, not a ``ConnectionError``. Any ``requests.RequestException`` (and a 5xx,
  such as ``/readyz`` before the database is ready) is retried until the deadline; a process
  that exits early is reported at once, with what it printed.
- A server is a process *group* (gunicorn's master and its workers). It starts in a session of
  its own, and stopping it signals the whole group: SIGTERM, a grace period, then SIGKILL, so
  that a worker orphaned by a crashed master does not outlive the test or the benchmark.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import requests

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
READY_SECONDS = 90.0  # a loaded 2-core machine imports the app in several seconds per worker
GRACE_SECONDS = 10.0
OUTPUT_TAIL = 4000  # characters of the server's output quoted in a failure


class ServerFailed(RuntimeError):
    """The server exited early or did not answer before its deadline."""


@dataclass
class Server:
    """A running server: its process (the group leader), base URL and captured output."""

    proc: subprocess.Popen[bytes]
    base: str
    log: IO[bytes] = field(repr=False)

    def output(self) -> str:
        """Everything the server printed so far (stdout and stderr, interleaved)."""
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def url(self, path: str) -> str:
        return f"{self.base}{path}"


def free_port() -> int:
    """A loopback port free right now (the kernel picks it, so parallel runs rarely collide)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


PRODUCTION = "python:core.serving"  # the README's production settings


def gunicorn_command(app: str, port: int, workers: int = 2, config: str = "") -> list[str]:
    """``gunicorn --workers N APP`` on a loopback port: gunicorn's own sync workers, or the
    settings module or file ``config`` (:data:`PRODUCTION`: the README's command line)."""
    settings = ["--config", config] if config else []
    return [sys.executable, "-m", "gunicorn", *settings, "--workers", str(workers),
            "--bind", f"{LOOPBACK}:{port}", app]


def _exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the leader has exited, *without* reaping it: while it is a zombie its process
    group id stays reserved, so signalling the group can never reach an unrelated process."""
    if proc.returncode is not None:
        return True
    return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _signal_group(proc: subprocess.Popen[bytes], signum: int) -> None:
    with suppress(ProcessLookupError):  # the whole group is gone already
        os.killpg(proc.pid, signum)


def stop(proc: subprocess.Popen[bytes], grace: float = GRACE_SECONDS) -> int:
    """SIGTERM to the group, wait up to ``grace``, then SIGKILL to whatever is left of it.
    Returns the leader's exit status. A second call only returns it: once the leader is
    reaped, its number may belong to someone else."""
    if proc.returncode is not None:
        return proc.returncode
    _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while not _exited(proc) and time.monotonic() < deadline:
        time.sleep(0.05)
    _signal_group(proc, signal.SIGKILL)  # stragglers, or a leader that ignored SIGTERM
    return proc.wait()


def _tail(server: Server) -> str:
    return server.output()[-OUTPUT_TAIL:]


def wait_until_ready(server: Server, path: str, seconds: float = READY_SECONDS,
                     ) -> requests.Response:
    """GET ``path`` until it answers below 500, or fail at the deadline or on an early exit."""
    deadline = time.monotonic() + seconds
    last: object = "no attempt"
    while True:
        if _exited(server.proc):
            raise ServerFailed(f"{server.proc.args!r} exited before {path} answered "
                               f"(last: {last}); its output:\n{_tail(server)}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ServerFailed(f"{server.url(path)} did not answer within {seconds:.0f} s "
                               f"(last: {last}); the server's output:\n{_tail(server)}")
        try:
            answer = requests.get(server.url(path), timeout=min(5.0, max(remaining, 0.1)))
        except requests.RequestException as exc:  # refused, reset, timed out: still starting
            last = repr(exc)
        else:
            if answer.status_code < 500:
                return answer
            last = f"HTTP {answer.status_code}"
        time.sleep(min(0.2, max(deadline - time.monotonic(), 0)))


@contextmanager
def serve(command: Sequence[str], port: int, *, env: Mapping[str, str] | None = None,
          ready: str = "/healthz", seconds: float = READY_SECONDS,
          cwd: Path = ROOT) -> Iterator[Server]:
    """Run ``command`` (which listens on ``port``), yield it once ``ready`` answers, stop it.

    Output goes to a temporary file, not a pipe: a chatty server can never block on a full
    pipe, and what it printed is still there to read after it stopped.
    """
    environment = {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            list(command), cwd=cwd, env=environment, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        server = Server(proc, f"http://{LOOPBACK}:{port}", log)
        try:
            wait_until_ready(server, ready, seconds)
            yield server
        finally:
            stop(proc)


def gunicorn(app: str, *, env: Mapping[str, str] | None = None, workers: int = 2,
             config: str = "", ready: str = "/healthz", seconds: float = READY_SECONDS,
             ) -> AbstractContextManager[Server]:
    """:func:`gunicorn_command` on a free port, ready and then stopped."""
    port = free_port()
    return serve(gunicorn_command(app, port, workers, config), port, env=env, ready=ready,
                 seconds=seconds)


def app_py(*args: str, env: Mapping[str, str], ready: str = "/readyz",
           seconds: float = READY_SECONDS) -> AbstractContextManager[Server]:
    """``python app.py ARGS`` (the embedded default) on a free port given as NONGDAI_PORT."""
    port = free_port()
    return serve([sys.executable, "app.py", *args], port,
                 env={**env, "NONGDAI_PORT": str(port)}, ready=ready, seconds=seconds)

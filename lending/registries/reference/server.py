"""Serving the reference registry: in its own process (``python -m ...``) or in a thread.

Both use waitress with enough threads for 40 requests at once (a benchmark's concurrent
lookups, each waiting on the configured latency). :class:`RunningRegistry` gives the base URLs
the bank's settings take and small helpers over the ``/_control`` API.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import waitress
from requests import Response, Session

from lending.registries import transport
from lending.registries.reference.app import create_app
from lending.registries.reference.state import State

THREADS = 48
CONTROL_TIMEOUT = 10.0  # seconds: control calls are local and quick


@dataclass
class RunningRegistry:
    """A reference registry that answers at ``url``: ``land_url`` and ``insurance_url`` are
    what ``NONGDAI_LAND_REGISTRY_URL`` and ``NONGDAI_INSURANCE_REGISTRY_URL`` take."""

    url: str
    _server: Any = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _state: State | None = field(default=None, repr=False)
    _control: Session = field(default_factory=Session, repr=False)

    @property
    def land_url(self) -> str:
        return f"{self.url}/land"

    @property
    def insurance_url(self) -> str:
        return f"{self.url}/insurance"

    # --- control -----------------------------------------------------------------------------

    def reset(self) -> None:
        self._send("POST", "/_control/reset")

    def faults(self, registry: str = "both", mode: str = "none", **options: Any) -> None:
        """``PUT /_control/faults``: e.g. ``faults("land", "error", count=2)``."""
        self._send("PUT", "/_control/faults", {"registry": registry, "mode": mode, **options})

    def plant(self, holder_hash: str, **records: Any) -> None:
        """``PUT /_control/holders/<hash>``: ``land=`` and/or ``insurance=`` (None: unknown)."""
        self._send("PUT", f"/_control/holders/{holder_hash}", records)

    def claim(self, holder_hash: str, **claim: Any) -> dict[str, Any]:
        """Add an assessed claim (a drought, a flood...) to the holder's insurance record."""
        return self._send("POST", f"/_control/holders/{holder_hash}/claims", claim).json()

    def requests(self, registry: str | None = None) -> list[dict[str, Any]]:
        """The registry requests served since the last reset, oldest first."""
        seen = self._send("GET", "/_control/requests").json()["requests"]
        return [r for r in seen if registry is None or r["registry"] == registry]

    def count(self, registry: str | None = None) -> int:
        return len(self.requests(registry))

    def _send(self, method: str, path: str, body: Any = None) -> Response:
        response = self._control.request(method, f"{self.url}{path}", json=body,
                                         timeout=CONTROL_TIMEOUT)
        response.raise_for_status()
        return response

    # --- lifecycle ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop serving: wake hanging requests, close every connection, join the threads."""
        self._control.close()
        if self._state is not None:
            self._state.wake.set()
        server = self._server
        if server is None:
            return
        server.task_dispatcher.shutdown(timeout=CONTROL_TIMEOUT)  # woken requests end first
        done = threading.Event()
        server.trigger.pull_trigger(lambda: _close_all(server, done))
        done.wait(CONTROL_TIMEOUT)
        if self._thread is not None:
            self._thread.join(CONTROL_TIMEOUT)


def _close_all(server: Any, done: threading.Event) -> None:
    """In the server's loop thread: close the listening socket and every channel, so the loop
    (which runs while it has anything to watch) ends."""
    for dispatcher in list(server._map.values()):  # waitress keeps no other list
        with contextlib.suppress(OSError):
            dispatcher.close()
    done.set()


def build(*, host: str, port: int, latency_ms: int, seed: str, as_of: date | None,
          threads: int = THREADS) -> tuple[Any, State]:
    """A waitress server for a new reference registry (not yet serving), and its state."""
    app = create_app(seed=seed, latency_ms=latency_ms, as_of=as_of)
    server = waitress.create_server(app, host=host, port=port, threads=threads,
                                    ident="nongdai-reference-registry")
    return server, app.extensions["reference_registry"]


def start_in_thread(host: str = "127.0.0.1", port: int = 0, *, latency_ms: int = 0,
                    seed: str = "nongdai", as_of: date | None = None,
                    threads: int = THREADS) -> RunningRegistry:
    """Serve a reference registry from a daemon thread of this process (tests, ``python app.py``).

    ``port=0`` takes a free port; the answer's ``url`` says which.
    """
    transport.install_log_filter()  # its log lines join the host process's
    server, state = build(host=host, port=port, latency_ms=latency_ms, seed=seed, as_of=as_of,
                          threads=threads)
    thread = threading.Thread(target=server.run, name="reference-registry", daemon=True)
    thread.start()
    return RunningRegistry(url=f"http://{host}:{server.effective_port}", _server=server,
                           _thread=thread, _state=state)

"""The device's HTTP: one ``requests.Session``, timeouts, retries with backoff (§8), and the
session's tokens (§1).

Every request of the protocol is safe to repeat (§8), so the rule is simple: a network error, a
5xx or a 429 is retried with the *same* request after an exponential backoff with jitter
(0.5 s doubling to 60 s); a 401 refreshes the access token once (§1.2) and repeats the request.
After ``attempts`` tries the caller gets :class:`Unreachable`: the outbox is untouched and the
next sync starts over. Nothing here ever drops, renumbers or re-keys an operation (§8).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import requests

from agents.client_store import LocalStore

RETRY_FIRST, RETRY_MAX = 0.5, 60.0  # seconds (§8)
TIMEOUT = (10.0, 60.0)  # connect, read: a 2G network is slow, not dead


class SyncError(Exception):
    """Base of what the client raises."""


class Unreachable(SyncError):
    """The server could not be reached (or kept failing): try again later; nothing is lost."""


class SignInRequired(SyncError):
    """The session is over (revoked device, reused or expired refresh token): sign in again."""


class ProtocolError(SyncError):
    """The server answered something the protocol does not allow here (a 4xx)."""

    def __init__(self, response: requests.Response) -> None:
        self.status, self.problem = response.status_code, _problem(response)
        super().__init__(f"{self.status} {self.problem.get('code')}: {self.problem}")

    @property
    def code(self) -> str | None:
        return self.problem.get("code")


@dataclass
class Backoff:
    """§8: exponential backoff with full jitter, injectable for tests."""

    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    first: float = RETRY_FIRST
    ceiling: float = RETRY_MAX

    def wait(self, attempt: int, at_least: float = 0.0) -> None:
        delay = min(self.ceiling, self.first * 2 ** attempt)
        self.sleep(max(at_least, self.rng.uniform(delay / 2, delay)))


class Transport:
    """Sends requests for one device: base URL, Bearer token, retries, token refresh."""

    def __init__(self, base_url: str, store: LocalStore, session: requests.Session | None = None,
                 *, backoff: Backoff | None = None, attempts: int = 8,
                 timeout: tuple[float, float] = TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self.store, self.backoff, self.attempts = store, backoff or Backoff(), attempts
        self.timeout = timeout
        self.http = session or requests.Session()

    def url(self, path: str) -> str:
        """``path`` under ``/api/v1``, or a server-given (possibly relative) URL such as a
        tus ``Location``."""
        if path.startswith(("http://", "https://", "/api/")):
            return urljoin(self.base_url + "/", path)
        return f"{self.base_url}/api/v1/{path.lstrip('/')}"

    def request(self, method: str, path: str, *, ok: Callable[[requests.Response], bool]
                = lambda r: r.status_code < 400, auth: bool = True,
                **kwargs: Any) -> requests.Response:
        """Send until an answer that is not a network error, 5xx, 429 or refreshed 401.

        ``ok`` says which answers the caller handles itself (a 412, a tus 409…); any other 4xx
        raises :class:`ProtocolError`.
        """
        refreshed = False
        for attempt in range(self.attempts):
            try:
                response = self._send(method, path, auth, kwargs)
            except requests.RequestException:
                self.backoff.wait(attempt)
                continue
            if response.status_code == 401 and auth and not refreshed:
                self.refresh()
                refreshed = True
                continue
            if response.status_code >= 500 or response.status_code == 429:
                self.backoff.wait(attempt, _retry_after(response))
                continue
            if response.status_code == 401:
                raise SignInRequired(_problem(response).get("code") or "unauthorized")
            if not ok(response):
                raise ProtocolError(response)
            return response
        raise Unreachable(f"{method} {path}: no usable answer after {self.attempts} tries")

    def _send(self, method: str, path: str, auth: bool,
              kwargs: Mapping[str, Any]) -> requests.Response:
        headers = dict(kwargs.get("headers") or {})
        if auth:
            token = self.store.get("access_token")
            if token is None:
                raise SignInRequired("not signed in")
            headers["Authorization"] = f"Bearer {token}"
        options = {**kwargs, "headers": headers}
        options.setdefault("timeout", self.timeout)
        return self.http.request(method, self.url(path), **options)

    # -- §1 tokens ---------------------------------------------------------------------------

    def keep_tokens(self, pair: Mapping[str, Any]) -> None:
        self.store.set(access_token=pair["access_token"], refresh_token=pair["refresh_token"])

    def refresh(self) -> None:
        """§1.2: trade the refresh token for a new pair. The old token stays stored until the
        new pair is, so a lost answer is retried with the **same** token: within the grace
        window the server gives the same new pair again."""
        presented = self.store.get("refresh_token")
        if presented is None:
            raise SignInRequired("no refresh token")
        response = self.request("POST", "auth/refresh", auth=False, ok=_any_answer,
                                json={"refresh_token": presented})
        if response.status_code != 200:
            raise SignInRequired(_problem(response).get("code") or str(response.status_code))
        self.keep_tokens(response.json())


def _any_answer(_response: requests.Response) -> bool:
    return True


def _retry_after(response: requests.Response) -> float:
    try:
        return float(response.headers.get("Retry-After", 0))
    except ValueError:
        return 0.0


def _problem(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}

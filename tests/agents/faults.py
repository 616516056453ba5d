"""Faults for the device client's tests: a misbehaving network, a server that dies in the middle
of a batch, a phone restored from an old backup. Everything random is drawn from one seeded
``random.Random``, so a failing schedule is replayed by its seed.

* :class:`FaultyAdapter`: a ``requests`` transport adapter that drops a request before sending
  it, loses the answer after the server handled it, or sends a request twice.
* :class:`CrashSwitch`: makes the *server* fail while handling a push, after its operations
  were applied and before the commit; the connection is dropped without an answer, as when
  the process is killed. The transaction must roll back entirely.
* :func:`backup` / :func:`restore`: copy a device's SQLite file, later put the copy back.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import shutil
import socket
import tempfile
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from agents.client import DeviceClient
from agents.client_http import Backoff

DROP, LOSE, DUPLICATE = "drop", "lose", "duplicate"


@dataclass
class Faults:
    """Probabilities of each fault per eligible request."""

    drop: float = 0.0
    lose: float = 0.0
    duplicate: float = 0.0
    only: tuple[str, ...] = ("/api/v1/sync/", "/api/v1/auth/refresh")  # path prefixes hit

    @classmethod
    def random(cls, rng: random.Random, most: float = 0.3) -> Faults:
        return cls(drop=rng.uniform(0, most), lose=rng.uniform(0, most),
                   duplicate=rng.uniform(0, most / 2))


class FaultyAdapter(HTTPAdapter):
    """Injects :class:`Faults` at random, and scripted ones first (``script.append(LOSE)``)."""

    def __init__(self, rng: random.Random | None = None, faults: Faults | None = None) -> None:
        super().__init__()
        self.rng = rng or random.Random()  # noqa: S311 - seeded faults, not secrets
        self.faults = faults or Faults()
        self.script: deque[str | None] = deque()  # forced: a fault, or None for none
        self.injected: Counter[str] = Counter()

    def _draw(self, request: requests.PreparedRequest) -> str | None:
        path = requests.utils.urlparse(request.url or "").path
        if not any(path.startswith(prefix) for prefix in self.faults.only):
            return None
        if self.script:
            return self.script.popleft()
        roll = self.rng.random()
        for name, chance in ((DROP, self.faults.drop), (LOSE, self.faults.lose),
                             (DUPLICATE, self.faults.duplicate)):
            if roll < chance:
                return name
            roll -= chance
        return None

    def send(self, request: requests.PreparedRequest, *args: Any,
             **kwargs: Any) -> requests.Response:
        fault = self._draw(request)
        if fault is not None:
            self.injected[fault] += 1
        if fault == DROP:
            raise requests.ConnectionError("fault: request dropped before it was sent")
        if fault == DUPLICATE:
            _ = super().send(request, *args, **kwargs).content  # the first copy, handled
        response = super().send(request, *args, **kwargs)
        if fault == LOSE:
            _ = response.content  # the server handled it and answered; the answer is lost
            response.close()
            raise requests.ConnectionError("fault: answer lost after the server handled it")
        return response


def faulty_session(rng: random.Random, faults: Faults | None = None
                   ) -> tuple[requests.Session, FaultyAdapter]:
    session = requests.Session()
    adapter = FaultyAdapter(rng=rng, faults=faults or Faults())
    session.mount("http://", adapter)
    return session, adapter


def no_sleep() -> Backoff:
    """Backoff that does not wait (the faults are instant; the retries are what matters)."""
    return Backoff(sleep=lambda _seconds: None, rng=random.Random(0))  # noqa: S311 - jitter


# -- the server dies mid-batch ----------------------------------------------------------------

class ServerCrash(BaseException):
    """Not an ``Exception``: no handler of the server may catch it, as none can catch a kill."""


class CrashSwitch:
    """WSGI middleware plus a session hook: once armed, the next push request fails after its
    operations were applied (flushed) and before its commit; the client sees the connection
    drop without an answer. Install once per app: ``switch = CrashSwitch.install(app)``."""

    PUSH = "/api/v1/sync/push"

    def __init__(self, wsgi: Callable[..., Any]) -> None:
        self.wsgi, self.armed, self.crashes = wsgi, 0, 0
        self.local = threading.local()

    @classmethod
    def install(cls, app: Any) -> CrashSwitch:
        import sqlalchemy as sa  # noqa: PLC0415
        from sqlalchemy import orm  # noqa: PLC0415

        switch = cls(app.wsgi_app)
        app.wsgi_app = switch
        sa.event.listen(orm.Session, "before_commit", switch._before_commit)
        app.extensions["tests.crash_switch"] = switch
        return switch

    @classmethod
    def uninstall(cls, app: Any) -> None:
        import sqlalchemy as sa  # noqa: PLC0415
        from sqlalchemy import orm  # noqa: PLC0415

        switch = app.extensions.pop("tests.crash_switch", None)
        if switch is not None:
            sa.event.remove(orm.Session, "before_commit", switch._before_commit)
            app.wsgi_app = switch.wsgi

    def arm(self, times: int = 1) -> None:
        self.armed += times

    def _before_commit(self, _session: Any) -> None:
        if getattr(self.local, "crash", False):
            self.local.crash = False
            raise ServerCrash("simulated server restart before commit")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if not (self.armed and environ.get("PATH_INFO") == self.PUSH
                and environ.get("REQUEST_METHOD") == "POST"):
            return self.wsgi(environ, start_response)
        self.armed -= 1
        self.local.crash = True
        try:
            return self.wsgi(environ, start_response)
        except ServerCrash:
            self.crashes += 1
            # The process is gone: its socket closes, the client reads end-of-stream at once.
            # (werkzeug takes the ConnectionError as a dropped connection and answers nothing.)
            peer = environ.get("werkzeug.socket")
            if peer is not None:
                with contextlib.suppress(OSError):
                    peer.shutdown(socket.SHUT_RDWR)
            raise ConnectionResetError("simulated server restart") from None
        finally:
            self.local.crash = False


# -- a phone restored from an old backup ------------------------------------------------------

def backup(client: DeviceClient, target: Path) -> Path:
    """What a phone backup does: a consistent copy of the client's database."""
    client.store.backup_to(target)
    return target


def restore(client: DeviceClient, copy: Path, *, keep_tokens: bool = True,
            **options: Any) -> DeviceClient:
    """Put ``copy`` back in place of ``client``'s database and start a new client on it. With
    ``keep_tokens`` the current session survives (the coordinator signed in again); without,
    the restored, stale refresh token ends the session on its first use (§1.2)."""
    tokens = {key: client.store.get(key) for key in ("access_token", "refresh_token")}
    path, base_url, http = client.store.path, client.transport.base_url, client.transport.http
    backoff = client.transport.backoff
    client.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(copy, path)
    restored = DeviceClient(base_url, path, session=http, backoff=backoff,
                            attempts=client.transport.attempts, timeout=client.transport.timeout,
                            **options)
    if keep_tokens and tokens["access_token"]:
        restored.store.set(**tokens)
    return restored


def resplit(ops: list[Any], rng: random.Random) -> Iterable[list[Any]]:
    """The outbox cut into batches of random sizes, sent in a random order (overtaking)."""
    batches, start = [], 0
    while start < len(ops):
        size = rng.randint(1, 4)
        batches.append(ops[start:start + size])
        start += size
    rng.shuffle(batches)
    return batches


# -- a coordinator's world, and what the server holds -----------------------------------------

_HASH: list[str] = []
_COUNT = itertools.count(1)
def _township(session: Any, n: int) -> Any:
    """One county and township for a thousand schedules, kept with the test's app (the
    factories' codes repeat after 99 counties)."""
    from flask import current_app  # noqa: PLC0415

    from core.places.models import County, Township  # noqa: PLC0415

    kept = current_app.extensions.setdefault("tests.fault_townships", {})
    if n // 1000 not in kept:
        county = County(code=f"9{n % 100000:05d}", name="测试县")
        township = Township(code=f"{county.code}{n % 1000:03d}", name="测试镇", county=county)
        session.add_all([county, township])
        session.flush()
        kept[n // 1000] = township
    return kept[n // 1000]


def _id_number(n: int) -> str:
    """Distinct for a long campaign (the factories' repeat after a thousand)."""
    from datetime import date, timedelta  # noqa: PLC0415

    from core.people import idnumber  # noqa: PLC0415

    return idnumber.make("330521", date(1960, 1, 1) + timedelta(days=n // 1000), n)


def _password_hash() -> str:
    if not _HASH:
        from core.security import hash_password  # noqa: PLC0415
        from tests import factories  # noqa: PLC0415

        _HASH.append(hash_password(factories.PASSWORD))
    return _HASH[0]


@dataclass
class Field:
    """A station serving one village, its coordinator and farmers (committed rows)."""

    coordinator: Any
    farmer_ids: list[str]
    village_id: int
    village_public_id: str


def field_world(session: Any, farmers: int = 2) -> Field:
    """Rows as :mod:`tests.factories` makes them, the coordinator's password hashed once per
    run (argon2 would otherwise be most of a schedule's time)."""
    from core.people.models import Coordinator  # noqa: PLC0415
    from tests import factories  # noqa: PLC0415

    n = next(_COUNT)
    township = _township(session, n)
    home = factories.village(session, township, code=f"{township.code}{n % 1000:03d}")
    station = factories.station(session, [home])
    coordinator = Coordinator(username=f"fault{n}", name="协贷员", phone=f"137{n:08d}",
                              password_hash=_password_hash(), station=station)
    session.add(coordinator)
    people = [factories.farmer(session, home, id_no=_id_number(n * 10 + k))
              for k in range(farmers)]
    session.commit()
    return Field(coordinator, [str(f.public_id) for f in people], home.id, str(home.public_id))


@contextlib.contextmanager
def phone_storage() -> Iterator[Path]:
    """A folder for the devices' databases, in memory when the machine has a tmpfs: the
    campaign tests the protocol, not the disk, and a phone's fsync is its own business."""
    memory = Path("/dev/shm")  # noqa: S108 - a private TemporaryDirectory inside it
    with tempfile.TemporaryDirectory(dir=memory if memory.is_dir() else None) as folder:
        yield Path(folder)


def device(base_url: str, session: Any, coordinator: Any, folder: Path, *,
           rng: random.Random | None = None, faults: Faults | None = None,
           attempts: int = 30, **options: Any) -> tuple[DeviceClient, FaultyAdapter]:
    """A signed-in device of ``coordinator`` whose network misbehaves as ``faults`` says."""
    import uuid  # noqa: PLC0415

    from tests import factories  # noqa: PLC0415

    device_id = uuid.uuid4()
    pair, _row = factories.device_tokens(session, coordinator, device_id)
    http, adapter = faulty_session(rng or random.Random(0), faults)  # noqa: S311 - seeded
    client = DeviceClient(base_url, folder / f"{device_id}.sqlite3", device_id, session=http,
                          backoff=no_sleep(), attempts=attempts, timeout=(5.0, 30.0),
                          **options)
    client.adopt_tokens(pair)
    return client, adapter


def parcel_visit(farmer_id: str, n: int = 0, photos: list[str] | None = None) -> dict[str, Any]:
    """A valid ``parcel_visit`` payload (§6) for ``farmer_id``."""
    payload: dict[str, Any] = {
        "farmer_id": farmer_id, "parcel_code": f"330521-001-0001-{n % 100:02d}",
        "location": {"lat_e7": 306_000_000 + n, "lon_e7": 1_200_000_000, "accuracy_m": 8},
        "crop_seen": "水稻", "estimated_area_mu": "3.25", "notes": f"visit {n}",
    }
    if photos:
        payload["photos"] = photos
    return payload


def server_ops(session: Any, op_ids: Iterable[str]) -> Counter[str]:
    """How many permanent op records the server holds for each of ``op_ids``."""
    import uuid  # noqa: PLC0415

    import sqlalchemy as sa  # noqa: PLC0415

    from sync.push.models import SyncOp  # noqa: PLC0415

    wanted = [uuid.UUID(op_id) for op_id in op_ids]
    return Counter(str(op_id) for op_id in _read(
        session, sa.select(SyncOp.op_id).where(SyncOp.op_id.in_(wanted))))


def server_visits(session: Any, entity_ids: Iterable[str]) -> Counter[str]:
    """How many visits the server holds for each of ``entity_ids``."""
    import uuid  # noqa: PLC0415

    import sqlalchemy as sa  # noqa: PLC0415

    from agents.models import FieldVisit  # noqa: PLC0415

    wanted = [uuid.UUID(entity_id) for entity_id in entity_ids]
    return Counter(str(entity_id) for entity_id in _read(
        session, sa.select(FieldVisit.public_id).where(FieldVisit.public_id.in_(wanted))))


def _read(session: Any, query: Any) -> list[Any]:
    """Read what the server committed, in a transaction of its own that ends at once (on
    SQLite an open transaction of the test would hold the app's writer lock)."""
    session.rollback()
    try:
        return list(session.execute(query).scalars())
    finally:
        session.rollback()

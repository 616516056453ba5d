"""gunicorn settings file of ``bench/decision.py``: log the SQLite write lock in each worker.

Loaded with ``-c`` for Nongdai's server only, it takes every setting from the production
module ``core/serving.py`` (which the ceiling loads itself) and adds one hook: its
``post_worker_init``, run in each worker once the app is loaded, listens to the app's
engine and appends one line per write transaction to
``$BENCH_DECISION_LOCK_LOG/locks-<pid>.log``: how long ``BEGIN IMMEDIATE`` waited for the
database's one write lock, and how long the transaction then held it (until its connection
was back in the pool, after the commit's fsync). On PostgreSQL nothing begins IMMEDIATE, and
nothing is written. The lines are read by ``bench/decision_load.py`` after each round.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event

from core import serving

globals().update({name: getattr(serving, name) for name in serving.SETTINGS})

LOG_DIR = "BENCH_DECISION_LOCK_LOG"
_BEGIN = "BEGIN IMMEDIATE"
_STARTED = "bench_decision_begin"


def post_worker_init(worker: Any) -> None:
    from core.db import db  # noqa: PLC0415 - the worker's app is loaded by now

    with worker.wsgi.app_context():
        engine = db.engine
    if engine.dialect.name != "sqlite":
        return
    folder = os.environ.get(LOG_DIR)
    if folder:
        _log_locks(engine, Path(folder))


def _log_locks(engine: Any, folder: Path) -> None:
    out = (folder / f"locks-{os.getpid()}.log").open("a", buffering=1, encoding="ascii")
    write = threading.Lock()
    holding: dict[int, tuple[float, float]] = {}  # DBAPI connection -> (locked at, waited)

    def before(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement == _BEGIN:
            conn.info[_STARTED] = time.perf_counter()

    def after(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement == _BEGIN:
            now = time.perf_counter()
            holding[id(conn.connection.dbapi_connection)] = (now, now - conn.info.pop(_STARTED))

    def checkin(dbapi_connection: Any, _record: Any) -> None:
        held = holding.pop(id(dbapi_connection), None)
        if held is None:
            return
        locked_at, waited = held
        with write:
            out.write(f"{waited * 1000:.2f} {(time.perf_counter() - locked_at) * 1000:.2f}\n")

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    event.listen(engine.pool, "checkin", checkin)

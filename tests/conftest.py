"""Test fixtures: a real database per run (SQLite file, or PostgreSQL when
``NONGDAI_TEST_DATABASE_URL`` is set), migrated once; each test gets a clean copy.

SQLite: the migrated database is a template file copied for every test.
PostgreSQL: every table is truncated after each test (TRUNCATE fires no row triggers, so
the append-only audit trail's triggers stay installed and tested).

As in the Flask tutorial, ``app`` holds no application context. A test that builds rows or
looks at them takes ``session``: its own context and session, playing a second process (a
database console) beside the app. Every client request and CLI command runs in a context of
its own, as under a WSGI server, so it shares neither ``g`` nor the session with the test;
what the test has written is committed before each call, as another process's work would be.
"""

from __future__ import annotations

import contextvars
import io
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import has_app_context
from flask.testing import FlaskClient, FlaskCliRunner

from app import create_app
from core import logs
from core.db import db

PG_URL = os.environ.get("NONGDAI_TEST_DATABASE_URL", "")


def _overrides(url: str, instance: Path) -> dict[str, Any]:
    return {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": url,
        "INSTANCE_PATH": str(instance),
        "NONGDAI_SEED_DEMO": False,
        "NONGDAI_SMS_SENDER": "log",
        "NONGDAI_SYNC_UPLOAD_DIR": str(instance / "uploads"),
    }


def _migrate(url: str, instance: Path) -> None:
    from flask_migrate import upgrade  # noqa: PLC0415

    app = create_app(_overrides(url, instance))
    with app.app_context():
        if any((Path(app.root_path) / "migrations" / "versions").glob("*.py")):
            upgrade()
        else:  # before the first migration exists
            db.create_all()
        db.engine.dispose()


def _reset_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The migrated database: a template file (SQLite) or the test server (PostgreSQL)."""
    instance = tmp_path_factory.mktemp("template")
    if PG_URL:
        _reset_postgres(PG_URL)
        _migrate(PG_URL, instance)
        return PG_URL
    template = instance / "template.sqlite3"
    _migrate(f"sqlite:///{template}", instance)
    return str(template)


def _truncate_all() -> None:
    tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


def _hand_over() -> None:
    """Commit what the test wrote, so a call sees it and finds no lock held by the test."""
    if has_app_context():
        db.session.commit()


class IsolatedClient(FlaskClient):
    """Runs each request in a context of its own, as a WSGI server does, and consumes and
    closes each response, so that work registered with ``core.lifecycle.after_response`` runs
    before the test looks at it."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("buffered", True)
        _hand_over()
        return contextvars.Context().run(super().open, *args, **kwargs)


class IsolatedRunner(FlaskCliRunner):
    """Runs each CLI command in a context of its own, as the ``flask`` command does."""

    def invoke(self, *args: Any, **kwargs: Any) -> Any:
        _hand_over()
        return contextvars.Context().run(super().invoke, *args, **kwargs)


def fresh_database_url(database: str, folder: Path) -> str:
    """A migrated database for one test: a copy of the SQLite template, or PostgreSQL."""
    if PG_URL:
        return PG_URL
    copy = folder / "nongdai.sqlite3"
    shutil.copyfile(database, copy)
    return f"sqlite:///{copy}"


@pytest.fixture
def app(database: str, tmp_path: Path) -> Iterator[Any]:
    url = fresh_database_url(database, tmp_path)
    application = create_app(_overrides(url, tmp_path))
    application.test_client_class = IsolatedClient
    application.test_cli_runner_class = IsolatedRunner
    yield application
    with application.app_context():
        if PG_URL:
            _truncate_all()
        db.engine.dispose()


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def runner(app: Any) -> Any:
    return app.test_cli_runner()


@pytest.fixture
def session(app: Any) -> Iterator[Any]:
    """The test's own session, in the test's own application context."""
    with app.app_context():
        yield db.session
        db.session.remove()


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """The app's JSON log lines, written to a buffer instead of stderr."""
    root = logging.getLogger()
    level = root.level
    buffer = io.StringIO()
    logs.configure("INFO", stream=buffer)
    yield buffer
    for handler in [h for h in root.handlers if getattr(h, "_nongdai", False)]:
        root.removeHandler(handler)
    root.setLevel(level)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if PG_URL:
        return
    skip = pytest.mark.skip(reason="needs NONGDAI_TEST_DATABASE_URL (PostgreSQL)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def live_server(app: Any) -> Iterator[str]:
    """The test's app served over real HTTP on a loopback port (werkzeug, threaded), for
    clients that speak HTTP themselves: the reference device client, tuspy. Yields the base URL.
    What the test writes with ``session`` is committed before each request, as for ``client``."""
    import threading  # noqa: PLC0415

    from werkzeug.serving import make_server  # noqa: PLC0415

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)

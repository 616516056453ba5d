"""The farmers benchmark's database: fresh, seeded, deterministic (see ``bench/api_farmers.py``).

One county, township and station over four villages, one coordinator; the same farmers and
Idempotency-Keys for the same random seed; the settings the app and its servers run with; and
what an acknowledged commit means on the database, read back from it.
"""

from __future__ import annotations

import os
import random
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from app import create_app
from bench import ceiling_app
from core.db import db
from core.people import idnumber
from core.people import services as people
from core.places import services as places

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-password-1"  # noqa: S105
SEED = 20261129
# Sign-in and lookup limits guard people, not a benchmark that signs in twice and creates
# thousands of farmers as one coordinator.
LIMITS = {"NONGDAI_LOGIN_PER_USER_PER_HOUR": 1000, "NONGDAI_LOOKUP_PER_USER_PER_HOUR": 1_000_000}
_SQLITE_SYNC = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def settings(url: str, instance: Path) -> dict[str, Any]:
    """The in-process app's configuration for this database and instance folder."""
    return {"SQLALCHEMY_DATABASE_URI": url, "INSTANCE_PATH": str(instance),
            "NONGDAI_SEED_DEMO": False, "NONGDAI_LOG_LEVEL": "WARNING", **LIMITS}


def server_env(url: str, instance: Path) -> dict[str, str]:
    """The same configuration as the environment of a gunicorn server."""
    return {**os.environ, "NONGDAI_DATABASE_URL": url, "NONGDAI_INSTANCE_PATH": str(instance),
            "NONGDAI_SEED_DEMO": "0", "NONGDAI_LOG_LEVEL": "WARNING",
            **{name: str(value) for name, value in LIMITS.items()}}


def reset_pg(url: str) -> None:
    """Drop and recreate the ``public`` schema of the database at ``url``."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


def seed(url: str, instance: Path) -> list[str]:
    """Migrate, then one county, township, station over 4 villages, and a coordinator;
    the ceiling's table; ANALYZE on PostgreSQL (it runs without autovacuum here)."""
    from flask_migrate import upgrade  # noqa: PLC0415

    ceiling_app.prepare(url)
    app = create_app(settings(url, instance))
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        places.create_county(db.session, code="330521", name="德清县")
        township = places.create_township(db.session, code="330521101", name="新市镇")
        villages = [places.create_village(db.session, code=f"330521101{200 + n}", name=f"村{n}")
                    for n in range(4)]
        station = places.create_station(db.session, name="服务站", township=township,
                                        villages=villages)
        people.create_coordinator(db.session, username="bench", name="协贷员",
                                  phone="13900000000", password=PASSWORD, station=station)
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("ANALYZE"))
        village_ids = [str(v.public_id) for v in villages]
        db.engine.dispose()
    return village_ids


def farmers(rng: random.Random, count: int, villages: list[str], offset: int) -> list[dict]:
    """``count`` new farmers' bodies, numbered from ``offset``, spread over ``villages``."""
    out = []
    for n in range(count):
        born = date(1955, 1, 1) + timedelta(days=rng.randrange(0, 40 * 365))
        seq = offset + n
        region = f"3305{21 + seq // 1000 % 70:02d}"
        out.append({"name": f"农户{seq}", "phone": f"13{seq:09d}",
                    "id_number": idnumber.make(region, born, seq),
                    "village_id": villages[seq % len(villages)]})
    return out


def keys(rng: random.Random, count: int) -> list[str]:
    """``count`` Idempotency-Keys (UUIDs drawn from ``rng``)."""
    return [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(count)]


def durability(url: str) -> str:
    """What an acknowledged commit means on this database, read back from it."""
    engine = ceiling_app.make_engine(url)
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            level = conn.exec_driver_sql("PRAGMA synchronous").scalar_one()
            text = f"journal_mode={mode}, synchronous={_SQLITE_SYNC.get(level, '?')}"
        else:
            sync = conn.exec_driver_sql("SHOW synchronous_commit").scalar()
            fsync = conn.exec_driver_sql("SHOW fsync").scalar()
            version = conn.exec_driver_sql("SHOW server_version").scalar()
            text = f"PostgreSQL {version}, synchronous_commit={sync}, fsync={fsync}"
    engine.dispose()
    return text

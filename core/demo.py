"""The embedded default: a demo county with townships, villages, stations and people, served.

``python app.py`` migrates the SQLite database under ``instance/``, seeds this data once (unless
``NONGDAI_SEED_DEMO=0`` or ``--no-demo``), prints the URLs and the demo logins, and serves the
app with waitress (a production-grade WSGI server, threaded, in one process) together with the
job scheduler: one process, so it is the deployment's one scheduler. Seeding goes through the
same services as the API, so every row is validated and audited (actor "system").
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from datetime import date
from pathlib import Path

import sqlalchemy as sa
import waitress
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask
from flask_migrate import upgrade

from core import jobs
from core.db import DbSession, db
from core.people import idnumber
from core.people import services as people
from core.places import services as places
from core.places.models import County, Station, Village

DEMO_PASSWORD = "nongdai-demo"  # noqa: S105 - printed for the demo; production has no demo data

COUNTY = ("330521", "德清县")
TOWNSHIPS = [("330521101", "新市镇"), ("330521102", "钟管镇")]
VILLAGES = [
    ("330521101201", "宋市村"), ("330521101202", "蔡界村"), ("330521101203", "韶村村"),
    ("330521102201", "干山村"), ("330521102202", "南舍村"),
]
STATIONS = [
    ("新市镇宋市村金融服务站", "330521101", ["330521101201", "330521101202", "330521101203"]),
    ("钟管镇干山村金融服务站", "330521102", ["330521102201", "330521102202"]),
]
STAFF = [("admin", "王建国", ["admin"]), ("reviewer", "李秀英", ["reviewer"]),
         ("approver", "陈志强", ["approver"])]
COORDINATORS = [("coord-xinshi", "周桂兰", "13900000001", 0),
                ("coord-zhongguan", "吴永刚", "13900000002", 1)]
FARMERS = [("张德福", "13800000001", "330521101201", date(1972, 3, 14)),
           ("刘春花", "13800000002", "330521101202", date(1981, 9, 2)),
           ("赵大海", "13800000003", "330521102201", date(1968, 11, 27))]
THREADS = 8  # waitress worker threads: requests served at once by the one process
SEEDERS = "nongdai_demo_seeders"
EMBEDDED = "nongdai_embedded_services"


def farmer_id_numbers() -> list[str]:
    """The demo farmers' (made-up, check-digit-valid) ID numbers, in the order of FARMERS."""
    return [idnumber.make(COUNTY[0], born, n)
            for n, (*_, born) in enumerate(FARMERS, start=1)]


def _seed_places() -> list[Station]:
    session = db.session
    places.create_county(session, code=COUNTY[0], name=COUNTY[1])
    townships = {code: places.create_township(session, code=code, name=name)
                 for code, name in TOWNSHIPS}
    villages = {code: places.create_village(session, code=code, name=name)
                for code, name in VILLAGES}
    return [places.create_station(session, name=name, township=townships[township],
                                  villages=[villages[code] for code in codes])
            for name, township, codes in STATIONS]


def _seed_people(stations: list[Station]) -> None:
    session = db.session
    for username, name, roles in STAFF:
        people.create_staff(session, username=username, name=name, password=DEMO_PASSWORD,
                            roles=roles)
    for username, name, phone, station in COORDINATORS:
        people.create_coordinator(session, username=username, name=name, phone=phone,
                                  password=DEMO_PASSWORD, station=stations[station])
    for (name, phone, village_code, _), number in zip(FARMERS, farmer_id_numbers(),
                                                      strict=True):
        village = session.scalars(sa.select(Village).where(Village.code == village_code)).one()
        people.create_farmer(session, name=name, phone=phone, village=village,
                             id_number=number)


Seeder = Callable[[DbSession], str | None]
Starter = Callable[[Flask], str | None]


def register_seeder(app: Flask, seeder: Seeder) -> None:
    """A domain's demo data, seeded after the places and people (``seeder(session)`` returns
    a line for the console, or None). It must leave data it finds alone, so that a database
    seeded by an earlier version gets the domain's data on its next start."""
    app.extensions.setdefault(SEEDERS, []).append(seeder)


def register_embedded(app: Flask, starter: Starter) -> None:
    """A service the embedded default starts in-process beside the app (a domain's reference
    registry, say): ``starter(app)`` starts it, adjusts ``app.config`` and returns a line for
    the banner, or None when it has nothing to start (production points elsewhere)."""
    app.extensions.setdefault(EMBEDDED, []).append(starter)


def seed(app: Flask) -> str:
    """Seed once; returns what it did. Runs in its own transaction."""
    lines = []
    with app.app_context():
        try:
            if db.session.scalar(sa.select(County.id).limit(1)) is not None:
                lines.append("demo data: places and people already present, left as is")
            else:
                _seed_people(_seed_places())
                lines.append("demo data: places and people seeded")
            for seeder in app.extensions.get(SEEDERS, ()):
                line = seeder(db.session)
                if line:
                    lines.append(line)
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
    return "\n".join(lines)


def start_embedded(app: Flask) -> list[str]:
    """Start the domains' embedded services (``python app.py`` only)."""
    return [line for starter in app.extensions.get(EMBEDDED, ()) if (line := starter(app))]


def banner(app: Flask) -> str:
    base = f"http://{app.config['NONGDAI_HOST']}:{app.config['NONGDAI_PORT']}"
    sms_log = Path(app.instance_path) / "sms.log"
    lines = [
        "Nongdai is starting.",
        f"  API        {base}/api/v1",
        f"  API docs   {base}/api/docs   (OpenAPI: {base}/api/openapi.json)",
        f"  health     {base}/healthz    {base}/readyz",
        f"  database   {app.config['SQLALCHEMY_DATABASE_URI']}",
    ]
    if app.config["NONGDAI_SEED_DEMO"]:
        lines += [
            "Demo logins (POST /api/v1/auth/login {username, password}):",
            *(f"  {u:<16} {DEMO_PASSWORD}   {'/'.join(r)}" for u, _, r in STAFF),
            *(f"  {u:<16} {DEMO_PASSWORD}   coordinator" for u, *_ in COORDINATORS),
            "Demo farmers sign in by SMS code (POST /api/v1/auth/otp, then /auth/otp/verify);",
            "coordinators find them by ID number (POST /api/v1/farmers/lookup {id_number}):",
            *(f"  {phone}  {number}  {name}   (made-up demo ID number)"
              for (name, phone, *_), number in zip(FARMERS, farmer_id_numbers(), strict=True)),
            f"  the demo SMS sender writes codes to {sms_log} a moment after the 202",
        ]
    return "\n".join(lines)


def prepare(app: Flask) -> None:
    """Migrate to head, seed the demo data when enabled, print the banner."""
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    with app.app_context():
        upgrade(directory=str(Path(app.root_path) / "migrations"))
    for line in start_embedded(app):
        print(line)  # noqa: T201
    if app.config["NONGDAI_SEED_DEMO"]:
        print(seed(app))  # noqa: T201 - the demo runner talks to a person
    print(banner(app))  # noqa: T201


def start_scheduler(app: Flask) -> BackgroundScheduler:
    """Run the app's registered jobs in this process, as ``flask scheduler`` does in its own.

    Each tick runs the job through :func:`core.jobs.run` (lease, own transaction), so a second
    scheduler elsewhere could never run it twice at once.
    """
    scheduler = jobs.add_jobs(app, BackgroundScheduler(timezone="UTC"))
    scheduler.start()
    return scheduler


def serve(app: Flask, threads: int = THREADS) -> None:
    """Serve with waitress and the scheduler until Ctrl-C or SIGTERM, then stop both cleanly.

    SIGTERM (a service manager's stop, a test's teardown) is turned into the same
    KeyboardInterrupt as Ctrl-C: waitress finishes the requests in progress, the scheduler
    waits for a running job, and the process exits 0.
    """
    scheduler = start_scheduler(app)
    print(f"scheduler: {len(scheduler.get_jobs())} jobs in this process")  # noqa: T201
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        waitress.serve(app, host=app.config["NONGDAI_HOST"], port=app.config["NONGDAI_PORT"],
                       threads=threads, ident="nongdai")
    finally:
        signal.signal(signal.SIGTERM, previous)
        scheduler.shutdown(wait=True)
        print("Nongdai stopped.", flush=True)  # noqa: T201

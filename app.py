"""Nongdai: the application factory, and ``python app.py`` for the embedded demo.

``create_app`` wires configuration, the data layer, the shared API conventions and then each
domain's ``init_app`` (blueprints, jobs, CLI commands). Production serves it with
``gunicorn 'app:create_app()'``.
"""

from __future__ import annotations

import sys
from typing import Any

from flask_migrate import Migrate
from werkzeug.middleware.proxy_fix import ProxyFix

import agents
import lending
import sync
from core import (
    api,
    auth,
    authz,
    cli,
    config,
    crypto,
    errors,
    health,
    i18n,
    idempotency,
    jobs,
    lifecycle,
    logs,
    outbox,
    people,
    places,
    ratelimit,
)
from core import db as data
from core.db import db
from core.lifecycle import NongdaiFlask

SHARED = (health, jobs, ratelimit, outbox, auth, places, people)
DOMAINS = (lending, sync, agents)


def create_app(overrides: dict[str, Any] | None = None) -> NongdaiFlask:
    settings = config.load()
    settings.update(overrides or {})
    config.check_production(settings)

    app = NongdaiFlask(__name__, instance_path=settings["INSTANCE_PATH"])
    app.config.update(settings)
    if settings["NONGDAI_PROXY_HOPS"]:
        hops = settings["NONGDAI_PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]

    logs.init_app(app)
    i18n.init_app(app)
    data.init_app(app)
    crypto.init_app(app)
    Migrate(app, db, directory=str(health.MIGRATIONS), compare_type=True)
    errors.init_app(app)
    lifecycle.init_app(app)
    authz.init_app(app, auth.authenticate)
    api.init_app(app)
    idempotency.init_app(app)
    for piece in (*SHARED, *DOMAINS):
        piece.init_app(app)
    authz.check_routes(app)
    cli.init_app(app)
    return app


def main(argv: list[str]) -> int:
    """Run the embedded default: SQLite under instance/, migrated, seeded, served by waitress
    (threaded, one process, with the job scheduler) on 127.0.0.1:5000 until Ctrl-C/SIGTERM.

    ``python app.py simulate [--villages N --farmers N --days N --seed N]`` plays a lending
    season instead, in a throwaway instance (see ``simulation``)."""
    if argv[:1] == ["simulate"]:
        import simulation  # noqa: PLC0415 - only the season simulation needs it

        return simulation.main(argv[1:])
    from core import demo  # noqa: PLC0415 - only the embedded runner needs it

    app = create_app()
    if "--no-demo" in argv:
        app.config["NONGDAI_SEED_DEMO"] = False
    demo.prepare(app)
    demo.serve(app)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Lending: products, credit policy, registry clients, applications and their review, and
servicing on the double-entry ledger.

Each part registers its own blueprints, jobs and commands through its ``init_app``.
``devicefeed`` publishes farmers (with their registry parcels) and field assignments to
coordinators' devices through ``sync``.
"""

from pathlib import Path

from flask import Flask

from lending import applications, ledger, policy, products, registries, servicing

# The credit policy first: the demo products are checked against its crop table.
PARTS = (policy, products, registries, applications, ledger, servicing)


def start_reference_registries(app: Flask) -> str | None:
    """``python app.py``: with no registry configured, serve the reference registry (synthetic,
    deterministic records) from a thread of this process and point the app at it."""
    cfg = app.config
    if cfg["NONGDAI_LAND_REGISTRY_URL"] or cfg["NONGDAI_INSURANCE_REGISTRY_URL"]:
        return None
    from lending.registries.reference import start_in_thread  # noqa: PLC0415

    running = start_in_thread(host="127.0.0.1", port=0)
    cfg["NONGDAI_LAND_REGISTRY_URL"] = running.land_url
    cfg["NONGDAI_INSURANCE_REGISTRY_URL"] = running.insurance_url
    return f"reference registries (synthetic land and insurance records): {running.url}"


def init_app(app: Flask) -> None:
    """Register lending's blueprints, jobs and CLI commands."""
    from core.demo import register_embedded, register_seeder  # noqa: PLC0415
    from core.i18n import register_catalog  # noqa: PLC0415
    from lending import devicefeed  # noqa: PLC0415
    from lending.registries.parcels import demo_seeder  # noqa: PLC0415

    register_catalog(app, Path(__file__).parent / "translations")
    for part in PARTS:
        part.init_app(app)
    devicefeed.init_app(app)
    register_seeder(app, demo_seeder)
    register_embedded(app, start_reference_registries)

"""Lending: the land-rights and insurance registries.

- ``clients``: the registries over HTTP (``transport``: one session and breaker per registry
  and process, timeouts, retries), typed results (``types``) read strictly (``wire``);
- ``service``: a lookup for one application, split into ``cached`` (database) / ``fetch``
  (HTTP, concurrent, no database) / ``remember`` (cache upsert), so the caller holds no
  transaction while a registry answers;
- ``extracts``, ``imports``, ``formats``, ``cli``: the ``extract:`` source for banks that get
  batch files, and ``flask registry import-land|import-insurance``;
- ``reference``: a reference registry service with synthetic records and fault switches, for
  the demo and the tests.

Nothing here runs on the request path unless the applications code calls it.
"""

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the models, the ``registry`` CLI group and the cache purge job."""
    from core.jobs import Job, register  # noqa: PLC0415 - keep importing this package cheap
    from lending.registries import cli, models, service, transport  # noqa: PLC0415, F401

    app.cli.add_command(cli.registry_cli)
    register(app, Job("registries.purge_cache", service.purge_cache, {"hours": 6}))
    transport.install_log_filter()

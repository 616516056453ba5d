"""Sync uploads: photos from coordinators' phones over tus 1.0.0 resumable uploads, stored by
content (SHA-256) behind :class:`~sync.uploads.store.AttachmentStore`.

For the rest of sync: :func:`sync.uploads.services.ready` (which photos have arrived) and
:func:`sync.uploads.services.open`.
"""

from flask import Flask

from sync.uploads import models as models


def init_app(app: Flask) -> None:
    """Register the uploads and attachments APIs and the expiry of abandoned uploads; the
    store is chosen by NONGDAI_SYNC_STORE."""
    from core.api import API_PREFIX, register  # noqa: PLC0415
    from sync.uploads import jobs, views  # noqa: PLC0415

    jobs.init_app(app)
    app.register_blueprint(views.discovery, url_prefix=API_PREFIX)  # tus OPTIONS, undocumented
    for blueprint in (views.blp, views.files):
        register(app, blueprint)

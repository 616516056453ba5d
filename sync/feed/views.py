"""``GET /api/v1/sync/pull``: a coordinator's phone fetches its scope, page by page.

A read: on SQLite it takes no write lock while it reads (``begin_read``); only the note of the
pull in the device's sync state (``sync.push.devicestate.note_pull``) writes, after the reads,
in the request's transaction (on SQLite a short one of its own), and only when there is news
to note (:func:`_worth_noting`). The body is compact JSON, gzipped when the client accepts
it (nothing else in the stack compresses).
"""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from flask import Response, current_app, request

from core.api import Blueprint, raises
from core.authz import Principal, access, current_principal
from core.db import begin_read, db, end_read, utcnow
from core.i18n import _
from sync import registry
from sync.feed import cursor as cursors
from sync.feed import pull, schemas
from sync.feed.errors import ResyncRequired
from sync.push import devicestate
from sync.push.errors import DeviceRequired

blp = Blueprint("sync_pull", __name__, description="Sync: what a coordinator's device pulls")

GZIP_LEVEL = 6
GZIP_MIN_BYTES = 1024  # smaller bodies are sent as they are (gzip's header costs more)


@blp.route("/sync/pull", methods=["GET"])
@access("coordinator")
@raises(DeviceRequired, ResyncRequired)
@blp.arguments(schemas.PullArgs, location="query")
@blp.response(200, schemas.PullPageSchema)
def pull_changes(args: dict[str, Any]) -> Response:
    """The next page of the coordinator's scope: a snapshot on the first pull (no cursor),
    then the changes since the cursor. Pull again while ``has_more``; 412 ``resync-required``
    means: drop the replica and the cursor, and pull from the start."""
    principal = current_principal()
    if principal.device_id is None:
        raise DeviceRequired(_("Sign in on the phone to sync: this session is not bound "
                               "to a device"))
    scope = _scope(principal)
    feeds = registry.of().feeds
    limit = int(args.get("limit") or min(schemas.DEFAULT_LIMIT, _limit_max()))
    begin_read(db.session)
    if args.get("cursor"):
        start = cursors.decode(args["cursor"], scope.coordinator, scope.hash)
    else:
        start = pull.start(db.session, scope, feeds)
    page = pull.page(db.session, scope, feeds, start, limit)
    text = cursors.encode(page.cursor)
    if _worth_noting(principal.device_id, text, more=page.has_more):
        end_read(db.session)  # SQLite: the write lock for the note alone, not the reads
        devicestate.note_pull(db.session, principal.device_id, text)
    body = {"changes": page.changes, "cursor": text, "has_more": page.has_more}
    return respond(body)


def _worth_noting(device_id: int, text: str, *, more: bool) -> bool:
    """Whether the device's sync state should record this pull: the device's first pull, the
    cursor a run of pages ends on (not each page of a long first pull: one write lock and one
    durable commit per run), or the last note older than ``NONGDAI_SESSION_TOUCH_SECONDS``.
    A phone polling an unchanged scope then costs reads only (on SQLite, no write lock and no
    durable commit)."""
    state = devicestate.read(db.session, device_id)
    if state is None or state.last_pull_at is None or (state.cursor != text and not more):
        return True
    interval = int(current_app.config["NONGDAI_SESSION_TOUCH_SECONDS"])
    return state.last_pull_at < utcnow() - timedelta(seconds=interval)


def _scope(principal: Principal) -> pull.Scope:
    return pull.Scope(principal.public_id, principal.village_ids,
                      cursors.scope_hash(principal.village_ids))


def _limit_max() -> int:
    return int(current_app.config["NONGDAI_SYNC_PULL_LIMIT_MAX"])


def _plain(value: Any) -> Any:
    """JSON for the types loaders hand over beside the native ones."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def respond(body: dict[str, Any]) -> Response:
    """Compact JSON, gzipped once here when the client accepts gzip (``Vary`` says so)."""
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":"), check_circular=False,
                     default=_plain).encode()
    response = Response(raw, status=200, mimetype="application/json")
    response.vary.add("Accept-Encoding")
    if len(raw) >= GZIP_MIN_BYTES and _accepts_gzip():
        response.set_data(gzip.compress(raw, compresslevel=GZIP_LEVEL, mtime=0))
        response.headers["Content-Encoding"] = "gzip"
    return response


def _accepts_gzip() -> bool:
    """``gzip`` accepted by name, or by ``*`` when not named (``gzip;q=0`` refuses it)."""
    offered = [(value.lower(), quality) for value, quality in request.accept_encodings]
    named = [quality for value, quality in offered if value in ("gzip", "x-gzip")]
    if named:
        return max(named) > 0
    return any(value == "*" and quality > 0 for value, quality in offered)

"""The pull cursor: opaque to the device, signed by the server.

It names where the device is (a snapshot kind and the last id sent, or a position in the change
feed), whose it is (the coordinator's public id) and for which scope (a hash of the sorted
village ids), so a cursor from another coordinator or from before a scope change is refused
instead of silently serving the wrong rows. Signed with the app's secret key (itsdangerous, as
Flask signs its sessions): a device cannot forge a position.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from flask import current_app
from itsdangerous import BadData, URLSafeSerializer

from core.i18n import _
from sync.feed.changes import Position
from sync.feed.errors import ResyncRequired

VERSION: Final = 1
SNAPSHOT: Final = "s"
FEED: Final = "f"
_SALT: Final = "nongdai.sync.pull-cursor"


@dataclass(frozen=True)
class Cursor:
    mode: str  # SNAPSHOT (then ``kind`` and ``after``) or FEED
    position: Position  # the feed position to continue from (the snapshot's start, in one)
    coordinator: uuid.UUID
    scope: str
    kind: str | None = None
    after: uuid.UUID | None = None


def scope_hash(village_ids: Iterable[int]) -> str:
    text = ",".join(str(v) for v in sorted(village_ids))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt=_SALT)  # type: ignore[arg-type]


def encode(cursor: Cursor) -> str:
    fields: list[Any] = [VERSION, cursor.mode, *cursor.position, cursor.coordinator.hex,
                         cursor.scope]
    if cursor.mode == SNAPSHOT:
        fields += [cursor.kind, cursor.after.hex if cursor.after else ""]
    return _serializer().dumps(fields)


def decode(text: str, coordinator: uuid.UUID, scope: str) -> Cursor:
    """The cursor ``text`` names, if this server issued it to ``coordinator`` for ``scope``;
    else 412 ``resync-required``."""
    try:
        cursor = _parse(_serializer().loads(text))
    except (BadData, ValueError, TypeError, IndexError) as exc:
        raise ResyncRequired(_("The cursor is not one this server issued; pull from the "
                               "start")) from exc
    if cursor.coordinator != coordinator:
        raise ResyncRequired(_("The cursor belongs to another coordinator; pull from the start"))
    if cursor.scope != scope:
        raise ResyncRequired(_("Your villages have changed; pull from the start"))
    return cursor


def _parse(fields: Any) -> Cursor:
    if not isinstance(fields, list) or fields[0] != VERSION or fields[1] not in (SNAPSHOT, FEED):
        raise ValueError("not a cursor")
    txid, seq = (int(v) for v in fields[2:4])
    coordinator, scope = uuid.UUID(hex=str(fields[4])), str(fields[5])
    if fields[1] == FEED:
        return Cursor(FEED, (txid, seq), coordinator, scope)
    after = uuid.UUID(hex=str(fields[7])) if fields[7] else None
    return Cursor(SNAPSHOT, (txid, seq), coordinator, scope, str(fields[6]), after)

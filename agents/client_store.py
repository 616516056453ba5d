"""The device's durable local state (docs/sync-protocol.md §2), in one SQLite file.

SQLite in WAL mode with ``synchronous=FULL``: when :meth:`LocalStore.record` returns, the
operation is on disk and survives a crash or a flat battery, which is the first rule of
exactly-once delivery ("an operation is written to the outbox **before** the coordinator is told
it was saved"). Every change that must be atomic on the device (an operation and ``next_seq``; a
pulled page and its cursor; a renumbering) is one SQLite transaction.

This module knows SQLite only: no HTTP, no Flask, nothing of the server.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- §2 outbox: recorded and not yet acknowledged, in device_seq order.
CREATE TABLE IF NOT EXISTS outbox (
    device_seq     INTEGER PRIMARY KEY,
    op_id          TEXT NOT NULL UNIQUE,
    type           TEXT NOT NULL,
    entity_id      TEXT NOT NULL,
    base_version   INTEGER,
    payload        TEXT NOT NULL,          -- canonical JSON (§3.1)
    payload_sha256 TEXT NOT NULL,
    recorded_at    TEXT NOT NULL,
    sent           INTEGER NOT NULL DEFAULT 0  -- pushes that carried it (0: server never saw it)
);
-- Final answers (§3.2), kept so the coordinator sees what happened to each operation;
-- rejected ones are the operations "set aside" for the coordinator.
CREATE TABLE IF NOT EXISTS finished (
    op_id      TEXT PRIMARY KEY,
    device_seq INTEGER NOT NULL,
    type       TEXT NOT NULL,
    entity_id  TEXT NOT NULL,
    payload    TEXT NOT NULL,
    status     TEXT NOT NULL,
    reason     TEXT,
    detail     TEXT,
    result     TEXT
);
-- §2 replica: entities pulled, by (kind, id). provisional = recorded here, not yet confirmed.
CREATE TABLE IF NOT EXISTS replica (
    kind        TEXT NOT NULL,
    id          TEXT NOT NULL,
    version     INTEGER,
    data        TEXT NOT NULL,
    provisional INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, id)
);
-- §2 uploads / §5: photos with their SHA-256, and the tus URL while unfinished.
CREATE TABLE IF NOT EXISTS uploads (
    sha256       TEXT PRIMARY KEY,
    content      BLOB NOT NULL,
    content_type TEXT NOT NULL,
    filename     TEXT NOT NULL,
    url          TEXT,
    done         INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass(frozen=True)
class OutboxOp:
    """One operation waiting in the outbox, as it goes on the wire (§3)."""

    device_seq: int
    op_id: str
    type: str
    entity_id: str
    base_version: int | None
    payload: str  # canonical JSON text, hashed as is
    payload_sha256: str
    recorded_at: str
    sent: int

    def wire(self) -> dict[str, Any]:
        """The operation in a push body (§3)."""
        return {
            "op_id": self.op_id, "device_seq": self.device_seq, "type": self.type,
            "entity_id": self.entity_id, "base_version": self.base_version,
            "payload": json.loads(self.payload), "payload_sha256": self.payload_sha256,
            "recorded_at": self.recorded_at,
        }


@dataclass(frozen=True)
class Photo:
    sha256: str
    content: bytes
    content_type: str
    filename: str
    url: str | None


class LocalStore:
    """The SQLite file holding ``device_id``, ``next_seq``, outbox, cursor, replica, uploads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # isolation_level=None: we open every transaction ourselves (BEGIN IMMEDIATE).
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic, durable change of the local state."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def backup_to(self, target: str | Path) -> None:
        """Copy the whole state to ``target`` (what a phone backup does)."""
        with sqlite3.connect(target) as copy:
            self.db.backup(copy)
        copy.close()

    # -- meta: device_id, next_seq, cursor, tokens -------------------------------------------

    def get(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def put(self, conn: sqlite3.Connection, **values: str | None) -> None:
        for key, value in values.items():
            if value is None:
                conn.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) "
                             "DO UPDATE SET value = excluded.value", (key, value))

    def set(self, **values: str | None) -> None:
        with self.transaction() as conn:
            self.put(conn, **values)

    def next_seq(self) -> int:
        return int(self.get("next_seq", "1") or 1)

    # -- outbox ------------------------------------------------------------------------------

    def append(self, op: dict[str, Any]) -> int:
        """Give ``op`` the next ``device_seq`` and write it, with ``next_seq``, atomically."""
        with self.transaction() as conn:
            seq = self.next_seq()
            conn.execute(
                "INSERT INTO outbox (device_seq, op_id, type, entity_id, base_version, payload,"
                " payload_sha256, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, op["op_id"], op["type"], op["entity_id"], op["base_version"],
                 op["payload"], op["payload_sha256"], op["recorded_at"]))
            self.put(conn, next_seq=str(seq + 1))
            if op["type"] == "register_farmer":  # the coordinator sees the new farmer at once
                self._provisional(conn, op["entity_id"], op["payload"])
        return seq

    def outbox(self, limit: int | None = None) -> list[OutboxOp]:
        sql = "SELECT * FROM outbox ORDER BY device_seq"
        rows = self.db.execute(sql + (" LIMIT ?" if limit else ""),
                               (limit,) if limit else ()).fetchall()
        return [OutboxOp(*row) for row in rows]

    def pending(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def mark_sent(self, ops: Sequence[OutboxOp]) -> None:
        with self.transaction() as conn:
            conn.executemany("UPDATE outbox SET sent = sent + 1 WHERE op_id = ?",
                             [(op.op_id,) for op in ops])

    def finish(self, conn: sqlite3.Connection, op: OutboxOp, answer: dict[str, Any]) -> None:
        """Move ``op`` out of the outbox: it reached a final state (§3.2)."""
        conn.execute("DELETE FROM outbox WHERE op_id = ?", (op.op_id,))
        conn.execute(
            "INSERT OR REPLACE INTO finished VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (op.op_id, op.device_seq, op.type, op.entity_id, op.payload, answer["status"],
             answer.get("reason"), _text(answer.get("detail")),
             json.dumps(answer.get("result"), ensure_ascii=False)))

    def renumber(self, conn: sqlite3.Connection, start: int) -> int:
        """§3.5: give the outbox's operations, in order, ``start``, ``start + 1``…; set
        ``next_seq`` after them. Returns how many were renumbered."""
        ops = [row[0] for row in conn.execute("SELECT op_id FROM outbox ORDER BY device_seq")]
        # Two passes through negative numbers: the primary key never collides midway.
        conn.executemany("UPDATE outbox SET device_seq = ? WHERE op_id = ?",
                         [(-(i + 1), op_id) for i, op_id in enumerate(ops)])
        conn.executemany("UPDATE outbox SET device_seq = ? WHERE op_id = ?",
                         [(start + i, op_id) for i, op_id in enumerate(ops)])
        self.put(conn, next_seq=str(start + len(ops)))
        return len(ops)

    def rewrite(self, conn: sqlite3.Connection, op_id: str, entity_id: str, payload: str,
                sha: str) -> None:
        """Re-key an operation the server has never seen (``sent = 0``), see §6."""
        conn.execute("UPDATE outbox SET entity_id = ?, payload = ?, payload_sha256 = ? "
                     "WHERE op_id = ? AND sent = 0", (entity_id, payload, sha, op_id))

    def finished(self, status: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT op_id, device_seq, type, entity_id, payload, status, reason, detail, " \
              "result FROM finished"
        rows = self.db.execute(sql + (" WHERE status = ?" if status else "") + " ORDER BY rowid",
                               (status,) if status else ()).fetchall()
        keys = ("op_id", "device_seq", "type", "entity_id", "payload", "status", "reason",
                "detail", "result")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    # -- replica -----------------------------------------------------------------------------

    def _provisional(self, conn: sqlite3.Connection, entity_id: str, payload: str) -> None:
        conn.execute("INSERT OR IGNORE INTO replica (kind, id, version, data, provisional) "
                     "VALUES ('farmer', ?, NULL, ?, 1)", (entity_id, payload))

    def apply_changes(self, conn: sqlite3.Connection, changes: Iterable[dict[str, Any]]) -> int:
        """§4: an upsert replaces the device's copy; a delete removes it."""
        count = 0
        for change in changes:
            count += 1
            if change["op"] == "delete":
                conn.execute("DELETE FROM replica WHERE kind = ? AND id = ?",
                             (change["kind"], change["id"]))
                continue
            conn.execute(
                "INSERT INTO replica (kind, id, version, data, provisional) VALUES (?, ?, ?, ?, 0)"
                " ON CONFLICT (kind, id) DO UPDATE SET version = excluded.version,"
                " data = excluded.data, provisional = 0",
                (change["kind"], change["id"], change.get("version"),
                 json.dumps(change.get("data"), ensure_ascii=False, sort_keys=True)))
        return count

    def discard_replica(self, conn: sqlite3.Connection) -> None:
        """§4 412: forget what was pulled (records of operations still pending stay)."""
        conn.execute("DELETE FROM replica WHERE provisional = 0")
        self.put(conn, cursor=None)

    def rekey(self, conn: sqlite3.Connection, kind: str, old: str, new: str) -> None:
        """A local record now known under the server's id (§6 ``register_farmer`` linked)."""
        exists = conn.execute("SELECT 1 FROM replica WHERE kind = ? AND id = ?",
                              (kind, new)).fetchone()
        if exists:
            conn.execute("DELETE FROM replica WHERE kind = ? AND id = ?", (kind, old))
        else:
            conn.execute("UPDATE replica SET id = ? WHERE kind = ? AND id = ?", (new, kind, old))

    def drop_provisional(self, conn: sqlite3.Connection, kind: str, entity_id: str) -> None:
        conn.execute("DELETE FROM replica WHERE kind = ? AND id = ? AND provisional = 1",
                     (kind, entity_id))

    def replica(self, kind: str, *, provisional: bool = True) -> dict[str, dict[str, Any]]:
        sql = "SELECT id, data FROM replica WHERE kind = ?"
        rows = self.db.execute(sql + ("" if provisional else " AND provisional = 0"), (kind,))
        return {row[0]: json.loads(row[1]) for row in rows}

    def versions(self, kind: str) -> dict[str, int | None]:
        rows = self.db.execute("SELECT id, version FROM replica WHERE kind = ?", (kind,))
        return {row[0]: row[1] for row in rows}

    # -- uploads -----------------------------------------------------------------------------

    def add_photo(self, sha: str, content: bytes, content_type: str, filename: str) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO uploads (sha256, content, content_type, filename)"
                         " VALUES (?, ?, ?, ?)", (sha, content, content_type, filename))

    def unfinished_photos(self) -> list[Photo]:
        rows = self.db.execute("SELECT sha256, content, content_type, filename, url FROM uploads"
                               " WHERE done = 0 ORDER BY rowid").fetchall()
        return [Photo(*row) for row in rows]

    def photo_url(self, sha: str, url: str | None) -> None:
        self.db.execute("UPDATE uploads SET url = ? WHERE sha256 = ?", (url, sha))

    def photo_done(self, sha: str) -> None:
        self.db.execute("UPDATE uploads SET done = 1, url = NULL WHERE sha256 = ?", (sha,))

    def photo_state(self, sha: str) -> tuple[bool, str | None] | None:
        row = self.db.execute("SELECT done, url FROM uploads WHERE sha256 = ?", (sha,)).fetchone()
        return (bool(row[0]), row[1]) if row else None


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)

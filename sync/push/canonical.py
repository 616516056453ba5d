"""The payload hash of docs/sync-protocol.md §3.1: SHA-256 of the canonical JSON (RFC 8785 for
the integer-only payloads the protocol allows)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical(payload: Any) -> bytes:
    """Keys sorted, no whitespace, non-ASCII written as itself in UTF-8.

    Raises ``UnicodeEncodeError`` for text UTF-8 cannot hold (an unpaired surrogate): no
    device can have hashed such a payload.
    """
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode()


def sha256(payload: Any) -> str:
    return hashlib.sha256(canonical(payload)).hexdigest()

"""Security primitives, in one leaf module that imports nothing from the project.

- Passwords: argon2id (argon2-cffi's recommended parameters).
- Keys: every purpose-bound key derives from one configured secret with HKDF-SHA256, so one
  secret is configured while the keys for signing tokens, hashing codes, hashing lookups and
  encrypting personal data stay independent.
- Hashes: keyed HMAC-SHA256 for low-entropy values (phone numbers, six-digit codes, ID numbers)
  and plain SHA-256 for high-entropy secrets (refresh tokens).
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MIN_PASSWORD_LENGTH = 10

_hasher = PasswordHasher()
# A real hash to verify against when the user does not exist, so that timing does not tell.
_DUMMY_HASH = _hasher.hash("nongdai-no-such-user")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; always spends one argon2 verification."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


@lru_cache(maxsize=64)
def derive_key(master: bytes, purpose: str) -> bytes:
    """A 32-byte key for ``purpose`` (e.g. ``"nongdai/access-token/v1"``) from ``master``.

    Cached: the derivation is pure, and a request would otherwise derive the same key several
    times. The cache holds derived keys of the configured secrets only.
    """
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=purpose.encode()).derive(master)


def keyed_hash(key: bytes, value: str) -> str:
    """Hex HMAC-SHA256 of ``value`` under ``key``: for lookups of low-entropy values."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def sha256_hex(value: str) -> str:
    """Unkeyed hash for high-entropy secrets (refresh tokens): enough, and cheap to look up."""
    return hashlib.sha256(value.encode()).hexdigest()

"""Purpose-bound keys derived from ``SECRET_KEY`` (through :func:`core.security.derive_key`).

One configured secret, independent keys per use: signing access tokens, hashing one-time codes,
hashing phone numbers for lookups, deriving a rotated refresh token's successor. Rotating
``SECRET_KEY`` invalidates all of them at once. Derivations are cached by ``core.security``, so
a request verifying a token pays a dictionary lookup, not an HKDF.
"""

from __future__ import annotations

import base64

from flask import current_app

from core import security

ACCESS_TOKEN = "nongdai/access-token/v1"  # noqa: S105 - a key label, not a secret
OTP_CODE = "nongdai/otp-code/v1"
PHONE_LOOKUP = "nongdai/phone-lookup/v1"
REFRESH_SUCCESSOR = "nongdai/refresh-successor/v1"


def derive(purpose: str) -> bytes:
    return security.derive_key(str(current_app.config["SECRET_KEY"]).encode(), purpose)


def keyed_hash(purpose: str, value: str) -> str:
    """Hex HMAC-SHA256 of ``value`` under the key for ``purpose``."""
    return security.keyed_hash(derive(purpose), value)


def phone_hash(phone: str) -> str:
    return keyed_hash(PHONE_LOOKUP, phone)


def successor_token(refresh_token: str) -> str:
    """The refresh token that replaces ``refresh_token`` when it is rotated (base64url, 43
    characters like a random one). Deterministic, so a retry of a rotation whose answer was
    lost can be given the same successor again without ever storing it in the clear."""
    digest = bytes.fromhex(keyed_hash(REFRESH_SUCCESSOR, refresh_token))
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")

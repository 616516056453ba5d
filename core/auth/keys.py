"""Purpose-bound keys derived from ``SECRET_KEY`` (HMAC-SHA256 as the derivation function).

One configured secret, independent keys per use: signing access tokens, hashing one-time codes,
hashing phone numbers for lookups. Rotating ``SECRET_KEY`` invalidates all of them at once.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import current_app

ACCESS_TOKEN = "nongdai/access-token/v1"  # noqa: S105 - a key label, not a secret
OTP_CODE = "nongdai/otp-code/v1"
PHONE_LOOKUP = "nongdai/phone-lookup/v1"


def derive(purpose: str) -> bytes:
    secret = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(secret, purpose.encode(), hashlib.sha256).digest()


def keyed_hash(purpose: str, value: str) -> str:
    """Hex HMAC-SHA256 of ``value`` under the key for ``purpose``."""
    return hmac.new(derive(purpose), value.encode(), hashlib.sha256).hexdigest()


def phone_hash(phone: str) -> str:
    return keyed_hash(PHONE_LOOKUP, phone)


def sha256_hex(value: str) -> str:
    """Unkeyed hash for high-entropy secrets (refresh tokens): enough, and cheap to look up."""
    return hashlib.sha256(value.encode()).hexdigest()

"""Personal data at rest: AES-256-GCM encryption and a keyed hash for lookups.

Both keys derive (HKDF-SHA256, :func:`core.security.derive_key`) from ``NONGDAI_DATA_KEY``
(32 random bytes, base64), so one secret is configured while the encryption key and the lookup
key stay independent.
Ciphertexts carry a version prefix (``v1.``) so that a later key rotation can tell them apart.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import Flask, current_app

from core import security
from core.config import ConfigError

VERSION = "v1"
# HKDF ``info`` of the v1 keys: changing either makes every stored ciphertext or hash unreadable.
ENCRYPTION = "nongdai/pii-encryption/v1"
LOOKUP = "nongdai/pii-lookup/v1"


class Vault:
    def __init__(self, data_key_b64: str) -> None:
        try:
            master = base64.b64decode(data_key_b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigError("NONGDAI_DATA_KEY must be base64") from exc
        if len(master) < 32:
            raise ConfigError("NONGDAI_DATA_KEY must decode to at least 32 bytes")
        self._aead = AESGCM(security.derive_key(master, ENCRYPTION))
        self._lookup_key = security.derive_key(master, LOOKUP)

    def encrypt(self, plaintext: str, context: str) -> str:
        """Encrypt; ``context`` (e.g. "farmer.id_number") is bound as associated data."""
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return f"{VERSION}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, context: str) -> str:
        version, _, body = token.partition(".")
        if version != VERSION:
            raise ValueError(f"unknown ciphertext version {version!r}")
        raw = base64.urlsafe_b64decode(body)
        return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()

    def lookup_hash(self, value: str, context: str) -> str:
        """Keyed HMAC-SHA256 (hex) for equality lookups and deduplication."""
        return security.keyed_hash(self._lookup_key, f"{context}\x00{value}")


def vault() -> Vault:
    return current_app.extensions["nongdai_vault"]


def init_app(app: Flask) -> None:
    app.extensions["nongdai_vault"] = Vault(app.config["NONGDAI_DATA_KEY"])

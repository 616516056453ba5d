"""Security primitives live in ``core.security``, and the keys derived from them stay put."""

from __future__ import annotations

import ast
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core import security
from core.auth import keys, tokens
from core.config import DEMO_DATA_KEY
from core.crypto import Vault
from core.db import utcnow

ROOT = Path(__file__).resolve().parents[2]

# Made with the demo data key by core.crypto before it used core.security: what is stored today
# must stay readable, and lookups must find it.
STORED = "v1.KAV9tLZG_BKIRg-SEWERi9WpBevOHlcZo97ZqsGzhwLrNYj_T_oQ2izfLTJiBg=="
STORED_NUMBER = "330521198005170012"
STORED_LOOKUP = "2b8b6b45baf7a569f6f2f82cb336705d58ce8ac799566820372df1cbae5cb8f7"


def test_existing_ciphertexts_and_lookup_hashes_still_match() -> None:
    vault = Vault(DEMO_DATA_KEY)
    assert vault.decrypt(STORED, "farmer.id_number") == STORED_NUMBER
    assert vault.lookup_hash(STORED_NUMBER, "farmer.id_number") == STORED_LOOKUP
    assert vault.decrypt(vault.encrypt(STORED_NUMBER, "x"), "x") == STORED_NUMBER


def test_derive_key_is_hkdf_sha256_without_salt() -> None:
    master = b"m" * 32
    expected = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                    info=b"nongdai/pii-lookup/v1").derive(master)
    assert security.derive_key(master, "nongdai/pii-lookup/v1") == expected
    assert security.derive_key(master, "nongdai/pii-encryption/v1") != expected


def test_access_tokens_are_signed_with_a_derived_key(app) -> None:
    claims = tokens.AccessClaims("staff", uuid.uuid4(), uuid.uuid4(), None)
    with app.app_context():
        token = tokens.encode_access(claims, utcnow())
    key = security.derive_key(app.config["SECRET_KEY"].encode(), keys.ACCESS_TOKEN)
    assert jwt.decode(token, key, algorithms=["HS256"], audience="nongdai-api")["kind"] == "staff"


def test_successor_refresh_tokens_are_keyed(app) -> None:
    with app.app_context():
        first = keys.successor_token("a-refresh-token")
        assert keys.successor_token("a-refresh-token") == first
        assert keys.successor_token("another-refresh-token") != first
        app.config["SECRET_KEY"] = "another-secret-key-of-enough-length-0123"
        assert keys.successor_token("a-refresh-token") != first


def _imports(folder: Path) -> set[str]:
    found: set[str] = set()
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
    return found


def test_people_do_not_import_auth() -> None:
    """``core.auth`` builds on ``core.people``; the other way round would be a cycle."""
    auth = {m for m in _imports(ROOT / "core" / "people")
            if m == "core.auth" or m.startswith("core.auth.")}
    assert not auth


def test_passwords_have_one_home() -> None:
    assert not (ROOT / "core" / "auth" / "passwords.py").exists()
    assert security.verify_password(security.hash_password("long enough pw"), "long enough pw")
    assert not security.verify_password(None, "anything at all")

"""A client generated from the live OpenAPI document works, as a mobile team would use it.

The app is served on a loopback port; ``openapi-python-client`` generates a client from
``/api/openapi.json`` (warnings fail the generation), and the test imports it from a temporary
folder and signs in, registers a farmer, reads, lists and reads a problem with it alone.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from werkzeug.serving import make_server

from core.people import idnumber
from tests import factories

PACKAGE = "nongdai_client"
LOOPBACK = "127.0.0.1"


@pytest.fixture
def base_url(app: Any) -> Iterator[str]:
    """The app on a loopback port, served from a thread (werkzeug's server, threaded)."""
    server = make_server(LOOPBACK, 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def _generate(base_url: str, folder: Path) -> None:
    config = folder / "config.json"
    # A tus chunk (PATCH /sync/uploads/{id}) is raw bytes under tus's own media type, which
    # the generator knows only by its generic name.
    config.write_text(json.dumps({
        "package_name_override": PACKAGE, "post_hooks": [],
        "content_type_overrides": {"application/offset+octet-stream": "application/octet-stream"},
    }))
    command = [sys.executable, "-m", "openapi_python_client", "generate",
               "--url", f"{base_url}/api/openapi.json", "--meta", "none",
               "--output-path", str(folder / PACKAGE), "--config", str(config),
               "--fail-on-warning"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def generated(base_url: str, tmp_path: Path) -> Iterator[Any]:
    """The generated package, imported from a temporary folder (and forgotten afterwards)."""
    _generate(base_url, tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        yield _Client(base_url)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


class _Client:
    """Modules of the generated package, by the names a developer would import."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.root = importlib.import_module(PACKAGE)
        self.models = importlib.import_module(f"{PACKAGE}.models")

    def op(self, tag: str, operation: str) -> ModuleType:
        return importlib.import_module(f"{PACKAGE}.api.{tag}.{operation}")


@pytest.fixture
def world(session: Any) -> dict[str, Any]:
    village = factories.village(session)
    station = factories.station(session, [village])
    factories.coordinator(session, station, username="wang")
    ids = {"village_id": village.public_id}
    session.commit()  # and read nothing more: the server's requests need the write lock
    return ids


def test_a_generated_client_signs_in_registers_reads_lists_and_reads_a_problem(
        generated: _Client, world: dict[str, Any]) -> None:
    m = generated.models
    anonymous = generated.root.Client(base_url=generated.base_url)

    tokens = generated.op("auth", "sign_in").sync(
        client=anonymous, body=m.Login(username=" WANG ", password=factories.PASSWORD))
    assert isinstance(tokens, m.Token), tokens
    client = generated.root.AuthenticatedClient(base_url=generated.base_url,
                                                token=tokens.access_token)

    number = idnumber.make("330521", date(1984, 6, 1), 7)
    created = generated.op("people", "create_farmer").sync(
        client=client, idempotency_key=str(uuid.uuid4()),
        body=m.FarmerCreate(name="王五", phone="13712345678", id_number=number,
                            village_id=world["village_id"]))
    assert isinstance(created, m.Farmer), created
    assert created.id_number_masked == "3305**********" + number[-4:]
    assert created.birth_date == date(1984, 6, 1)

    read = generated.op("people", "get_farmer").sync(client=client, farmer_id=created.id)
    assert isinstance(read, m.Farmer)
    assert read.to_dict() == created.to_dict()

    page = generated.op("people", "list_farmers").sync(client=client, limit=10)
    assert isinstance(page, m.FarmerPage)
    assert [farmer.id for farmer in page.items] == [created.id]
    assert page.next_cursor is None

    missing = generated.op("people", "get_farmer").sync_detailed(client=client,
                                                                 farmer_id=uuid.uuid4())
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert isinstance(missing.parsed, m.Problem)
    assert (missing.parsed.code, missing.parsed.status) == ("not-found", 404)

    invalid = generated.op("people", "list_farmers").sync_detailed(client=client, limit=0)
    assert isinstance(invalid.parsed, m.Problem)
    assert invalid.parsed.code == "validation-failed"
    assert invalid.parsed.errors.to_dict() == {"limit": ["须在 1 至 200 之间。"]}  # zh-CN default

"""The people of the season, each speaking HTTP to the simulated bank as their real
counterparts do: farmers on their phones (SMS sign-in, applications, offers, draws), the
farmers' payment channel (signed notifications), coordinators on the reference device client
(:mod:`agents.client`) over an intermittent network, and staff at their desks.

Nothing here touches the database: every action is a request, and what the simulation knows
comes from the answers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import re
import threading
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, ClassVar

import requests
from requests.adapters import HTTPAdapter

from agents.client import DeviceClient, SyncError
from agents.client_http import Backoff

API = "/api/v1"
TIMEOUT = 30.0
CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")


class SimulationError(Exception):
    """The bank answered something the simulation cannot go on from."""


# -- SMS --------------------------------------------------------------------------------------

class SmsInbox:
    """The simulated instance's SMS sender (``NONGDAI_SMS_SENDER``): every message lands in
    the phones' inboxes here, where the farmers read their sign-in codes."""

    messages: ClassVar[dict[str, list[str]]] = defaultdict(list)
    _arrived: ClassVar[threading.Condition] = threading.Condition()

    def send(self, phone: str, body: str) -> None:
        with self._arrived:
            self.messages[phone].append(body)
            self._arrived.notify_all()

    @classmethod
    def wait_code(cls, phone: str, seen: int, timeout: float = 15.0) -> str:
        """The six-digit code of the first message to ``phone`` after the first ``seen``."""
        with cls._arrived:
            if not cls._arrived.wait_for(lambda: len(cls.messages[phone]) > seen, timeout):
                raise SimulationError(f"no SMS reached {phone}")
            match = CODE.search(cls.messages[phone][seen])
        if match is None:
            raise SimulationError(f"no code in the SMS to {phone}")
        return match.group(1)

    @classmethod
    def count(cls, phone: str | None = None) -> int:
        with cls._arrived:
            if phone is not None:
                return len(cls.messages[phone])
            return sum(len(items) for items in cls.messages.values())

    @classmethod
    def clear(cls) -> None:
        with cls._arrived:
            cls.messages.clear()


# -- HTTP -------------------------------------------------------------------------------------

@dataclass
class Api:
    """One person's conversation with the bank: base URL, their token, and a tally of the
    answers by status for the report."""

    base_url: str
    http: requests.Session
    token: str | None = None
    tally: Counter[str] = field(default_factory=Counter)

    def call(self, method: str, path: str, *, json_body: Any = None,
             params: dict[str, Any] | None = None, idempotent: bool = False,
             headers: dict[str, str] | None = None, data: bytes | None = None,
             ) -> requests.Response:
        sent = dict(headers or {})
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        if idempotent:
            sent["Idempotency-Key"] = str(uuid.uuid4())
        response = self.http.request(method, f"{self.base_url}{API}{path}", json=json_body,
                                     params=params, headers=sent, data=data, timeout=TIMEOUT)
        self.tally[f"{method} {response.status_code}"] += 1
        return response

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON of a 2xx answer; anything else is a :class:`SimulationError`."""
        response = self.call(method, path, **kwargs)
        if response.status_code >= 300:
            raise SimulationError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response.json() if response.content else None

    def sign_in(self, username: str, password: str) -> None:
        self.token = None
        self.token = self.ok("POST", "/auth/login",
                             json_body={"username": username, "password": password}
                             )["access_token"]


# -- farmers ----------------------------------------------------------------------------------

@dataclass
class Farmer:
    """A household on its phone."""

    seed: Any  # world.FarmerSeed
    api: Api
    rng: random.Random  # this household's own draws, so the order of others changes nothing
    application_id: str | None = None
    state: str | None = None
    loan_id: str | None = None
    settled: bool = False
    paid_through: set[str] = field(default_factory=set)  # due dates paid (or planned)
    late_by: int = 0  # days a late payer waits after each due date

    def sign_in(self) -> None:
        """One-time SMS code: ask, read it from the inbox, verify."""
        phone = self.seed.phone
        seen = SmsInbox.count(phone)
        self.api.ok("POST", "/auth/otp", json_body={"phone": phone})
        code = SmsInbox.wait_code(phone, seen)
        self.api.token = self.api.ok("POST", "/auth/otp/verify",
                                     json_body={"phone": phone, "code": code})["access_token"]

    def apply(self, product_id: str) -> str:
        """Apply on all registered parcels, giving the consents in the same request."""
        land = self.api.ok("GET", "/land-records")
        parcels = [{"certificate_number": cert["number"], "parcel_code": parcel["code"],
                    "declared_area_mu": parcel["area_mu"]}
                   for cert in land.get("certificates", []) for parcel in cert["parcels"]]
        if not parcels:  # the land-registry consent is given with the application
            parcels = [{"certificate_number": _cert(self.seed), "parcel_code": p["code"],
                        "declared_area_mu": p["area_mu"]} for p in self.seed.parcels]
        answer = self.api.ok("POST", "/applications", idempotent=True, json_body={
            "product_id": product_id, "amount_fen": self.seed.amount_fen,
            "term_months": self.seed.term_months, "purpose": "买化肥和种子",
            "crop": self.seed.crop, "parcels": parcels,
            "consents": ["credit_decision", "land_registry", "insurance"]})
        self.application_id, self.state = answer["id"], answer["state"]
        return str(answer["state"])

    def refresh_state(self) -> str:
        answer = self.api.ok("GET", f"/applications/{self.application_id}")
        self.state = answer["state"]
        return str(answer["state"])


def _cert(seed: Any) -> str:
    return f"CERT-{seed.parcels[0]['code'].split('-')[0]}"


def grant_consents(api: Api) -> None:
    """The land-registry consent first, so the farmer can see their parcels (README step 2)."""
    me = api.ok("GET", "/farmers/me")
    api.ok("POST", f"/farmers/{me['id']}/consents", idempotent=True,
           json_body={"purpose": "land_registry", "valid_days": 365})


# -- the payment channel ----------------------------------------------------------------------

@dataclass
class PaymentChannel:
    """The farmers' payment channel: it tells the bank of money received, signing each
    notification's raw body with the shared secret (HMAC-SHA256, hex)."""

    api: Api
    code: str
    secret: str
    sequence: int = 0

    def notify(self, loan_id: str, amount_fen: int, paid_on: date) -> requests.Response:
        self.sequence += 1
        body = json.dumps({
            "channel": self.code, "reference": f"SIM-{self.sequence:08d}", "loan_id": loan_id,
            "amount_fen": amount_fen,
            "paid_at": datetime(paid_on.year, paid_on.month, paid_on.day, 2, 0,
                                tzinfo=UTC).isoformat().replace("+00:00", "Z"),
        }, separators=(",", ":")).encode()
        signature = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        return self.api.call("POST", "/payments/notify", data=body, headers={
            "Content-Type": "application/json", "X-Nongdai-Signature": signature})


# -- coordinators: the reference device client over a patchy network --------------------------

class PatchyNetwork(HTTPAdapter):
    """A rural mobile network: a share of requests never leave the phone, and a share of
    answers are lost after the server handled the request. Seeded, so a run replays."""

    def __init__(self, rng: random.Random, drop: float, lose: float) -> None:
        super().__init__()
        self.rng, self.drop, self.lose = rng, drop, lose
        self.faults: Counter[str] = Counter()

    def send(self, request: requests.PreparedRequest, *args: Any,
             **kwargs: Any) -> requests.Response:
        roll = self.rng.random()
        if roll < self.drop:
            self.faults["dropped"] += 1
            raise requests.ConnectionError("simulated: no signal, the request never left")
        response = super().send(request, *args, **kwargs)
        if roll < self.drop + self.lose:
            _ = response.content  # the server handled it; the answer never arrives
            response.close()
            self.faults["answer lost"] += 1
            raise requests.ConnectionError("simulated: the answer was lost")
        return response

    @property
    def requests_faulted(self) -> int:
        return sum(self.faults.values())


@dataclass
class Coordinator:
    """A village coordinator with the reference device client on a patchy network."""

    username: str
    device: DeviceClient
    network: PatchyNetwork
    done: set[str] = field(default_factory=set)  # assignments visited (recorded)
    syncs: Counter[str] = field(default_factory=Counter)

    @classmethod
    def on_device(cls, base_url: str, username: str, folder: Path, rng: random.Random, *,
                  drop: float, lose: float) -> Coordinator:
        network = PatchyNetwork(random.Random(rng.random()), drop, lose)  # noqa: S311
        http = requests.Session()
        http.mount("http://", network)
        device = DeviceClient(base_url, folder / f"{username}.sqlite3",
                              device_id=uuid.UUID(int=rng.getrandbits(128), version=4),
                              session=http, attempts=6,
                              backoff=Backoff(sleep=lambda _s: None,
                                              rng=random.Random(rng.random())))  # noqa: S311
        return cls(username=username, device=device, network=network)

    def sign_in(self, password: str) -> None:
        for _attempt in range(20):  # no signal at the office either: try again
            try:
                self.device.sign_in(self.username, password, label=f"{self.username}的手机")
                return
            except SyncError:
                continue
        raise SimulationError(f"{self.username} could not sign in")

    def sync(self) -> bool:
        """Photos, push, pull when the signal lasts; False when it did not (nothing lost)."""
        try:
            self.device.sync()
        except SyncError:
            self.syncs["interrupted"] += 1
            return False
        self.syncs["completed"] += 1
        return True

    def visit(self) -> int:
        """Offline: do the open assignments the phone knows of (field checks and post-loan
        visits) and record them in the outbox. Returns how many were visited."""
        farmers = self.device.replica("farmer")
        visited = 0
        for assignment_id, data in sorted(self.device.replica("assignment").items()):
            if data.get("status") != "open" or assignment_id in self.done:
                continue
            farmer = farmers.get(str(data.get("farmer_id")), {})
            if data.get("kind") == "field_check":
                self._field_check(assignment_id, data, farmer)
            else:
                self._post_loan(assignment_id, data)
            self.done.add(assignment_id)
            visited += 1
        return visited

    def _field_check(self, assignment_id: str, data: dict[str, Any],
                     farmer: dict[str, Any]) -> None:
        ids = {"farmer_id": str(data["farmer_id"]), "assignment_id": assignment_id}
        self.device.record("identity_check", {**ids, "verified": True})
        where = {p["code"]: p for p in farmer.get("parcels", [])}
        for parcel in (data.get("application") or {}).get("parcels", []):
            known = where.get(parcel["code"], {})
            location = {"lat_e7": int(known.get("lat_e7") or 306_000_000),
                        "lon_e7": int(known.get("lon_e7") or 1_201_000_000), "accuracy_m": 10}
            self.device.record("parcel_visit", {
                **ids, "parcel_code": parcel["code"], "crop_seen":
                (data.get("application") or {}).get("crop") or "rice",
                "estimated_area_mu": parcel["declared_area_mu"], "location": location})
        self.device.record("assignment_status", {"status": "done", "notes": "实地核查完成"},
                           entity_id=assignment_id)

    def _post_loan(self, assignment_id: str, data: dict[str, Any]) -> None:
        self.device.record("post_loan_visit", {
            "farmer_id": str(data["farmer_id"]), "assignment_id": assignment_id,
            "crop_condition": "fair", "funds_used_as_declared": True})
        self.device.record("assignment_status", {"status": "done", "notes": "贷后走访"},
                           entity_id=assignment_id)

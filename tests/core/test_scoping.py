"""The cross-village test: walk every ``/api/v1`` route that takes a UUID and call it with the
ids of objects outside the caller's scope.

Village A and village B sit in different counties; each has its own station (serving only
that village), coordinator, farmers, consents and device. For every route with ``<uuid:...>``
arguments and every method it allows:

- if the caller's role passes the route's access rule, B's objects answer **404** (as if they
  did not exist) and the caller's own objects answer 2xx (so the 404 is scoping, not a
  broken route);
- if the role does not pass (admin-only routes such as ``PATCH /villages/<id>``,
  ``GET /coordinators/<id>``, ``GET /staff/<id>``; ``POST /consents/<id>/revoke`` for a
  coordinator; ``GET /stations/<id>`` for a farmer), the answer is **403** for every id: the
  role check runs before any lookup, so a 403 reveals nothing about the object.

A new route with a UUID argument this test does not know fails the test: add its kind below.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest

from core.auth.models import Device
from core.authz import Principal, rule_for
from core.errors import NongdaiError
from lending.policy.models import CreditPolicy
from lending.servicing import payouts
from lending.servicing.models import Disbursement, Loan
from lending.servicing.relief_models import ReliefCase
from sync.push.models import SyncConflict
from sync.uploads.models import Upload
from tests import factories as f
from tests.core.test_people_helpers import API, assert_problem, consent, creating
from tests.lending import review_factories as lending

UUID_ARG = re.compile(r"<uuid:(\w+)>")

# Bodies that pass validation, so that the lookup (not the schema) decides the answer.
BODIES: dict[tuple[str, str], dict[str, Any] | None] = {
    ("POST", "/farmers/<uuid:farmer_id>/consents"): {"purpose": "insurance", "valid_days": 30},
    ("POST", "/consents/<uuid:consent_id>/revoke"): None,
    ("POST", "/devices/<uuid:device_id>/revoke"): None,
    ("POST", "/applications/<uuid:application_id>/submit"): None,
    ("POST", "/applications/<uuid:application_id>/withdraw"): None,
    ("POST", "/applications/<uuid:application_id>/information"): {"answer": "两块地共8亩"},
    ("POST", "/applications/<uuid:application_id>/field-checks"): {
        "client_id": "0192f0c4-7b9c-7cc0-8000-000000000001", "identity_verified": True,
        "parcels": [], "recorded_at": "2026-11-29T08:00:00+08:00"},
    ("POST", "/review/applications/<uuid:application_id>/actions"): {
        "action": "recommend_approve", "reason": "材料齐全"},
    ("POST", "/sync/conflicts/<uuid:conflict_id>/resolve"): {
        "resolution": "keep_server", "reason": "以行里为准"},
    # servicing (#13)
    ("POST", "/applications/<uuid:application_id>/accept"): None,
    ("POST", "/loans/<uuid:loan_id>/disbursements"): {"reason": "放款"},
    ("POST", "/disbursements/<uuid:disbursement_id>/authorise"): None,
    ("POST", "/disbursements/<uuid:disbursement_id>/reject"): {"reason": "账户待核实"},
    ("POST", "/payouts/<uuid:payout_id>/confirm"): {"core_reference": "CBS-1"},
    ("POST", "/payouts/<uuid:payout_id>/fail"): {"reason": "账户已销户"},
    ("POST", "/loans/<uuid:loan_id>/draws"): {"amount_fen": 100_00},
    ("POST", "/loans/<uuid:loan_id>/line-reviews"): {"action": "freeze", "reason": "年审未过"},
    ("POST", "/loans/<uuid:loan_id>/repayments"): {"reference": "RCPT-1", "amount_fen": 100},
    ("POST", "/loans/<uuid:loan_id>/refunds"): {"amount_fen": 100, "reason": "多缴退还"},
    ("POST", "/loans/<uuid:loan_id>/reschedules"): {
        "new_maturity_date": "2028-10-01", "reason": "受灾延期"},
    ("POST", "/relief-cases/<uuid:relief_case_id>/actions"): {
        "action": "recommend", "reason": "核实受灾"},
}
PATCH_BODY = {"name": "新名字"}
# tus routes speak in headers: the protocol version on every request, an (empty) chunk at
# the server's offset on PATCH.
TUS = {"Tus-Resumable": "1.0.0"}
RAW: dict[tuple[str, str], dict[str, Any]] = {
    ("PATCH", "/sync/uploads/<uuid:upload_id>"): {"data": b"", "headers": {
        **TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}},
    ("DELETE", "/sync/uploads/<uuid:upload_id>"): {"headers": TUS},
}
# Routes whose answer on one's own object depends on its state: 409 there still shows that the
# object was found (the walk is about 404 for others' objects, not about the state machine).
STATE_BOUND = {
    "POST /api/v1/applications/<uuid:application_id>/submit",  # only a draft is submitted
    "POST /api/v1/applications/<uuid:application_id>/information",  # only when asked
    "POST /api/v1/applications/<uuid:application_id>/withdraw",  # once withdrawn, final
    # The side's application stays under review (the routes above need it so): only an
    # approved one has an offer to show or accept (``application-not-approved``).
    "GET /api/v1/applications/<uuid:application_id>/offer",
    "POST /api/v1/applications/<uuid:application_id>/accept",
}
# Kinds of rows the whole bank shares (its loan products): no village to scope them by.
BANK_WIDE = {"product_id"}


@dataclass
class Side:
    """One village's objects, by the URL argument that names them."""

    ids: dict[str, uuid.UUID]


def _side(session: Any) -> tuple[Side, dict[str, Any]]:
    village = f.village(session)  # its own township and county
    station = f.station(session, [village])
    coordinator = f.coordinator(session, station)
    farmer = f.farmer(session, village)
    device = Device(coordinator=coordinator, label="phone")
    session.add(device)
    session.flush()
    case = lending.application(session, farmer)  # under review, with its product and policy
    upload = Upload(coordinator_id=coordinator.id, sha256="0" * 64, length=1, offset=0,
                    content_type="image/jpeg")
    session.add(upload)
    conflict = SyncConflict(kind="farmer", entity_id=farmer.public_id, field="phone",
                            server_value="a", device_value="b", device_id=device.id,
                            op_id=uuid.uuid4(), base_version=1)
    session.add(conflict)
    session.flush()
    rows = {**_servicing(session, case, farmer, village),
            "village": village, "station": station, "coordinator": coordinator,
            "farmer": farmer, "consent": consent(session, farmer), "device": device,
            "upload": upload, "conflict": conflict,
            "staff": f.staff(session, ("reviewer",)), "application": case,
            "product": case.product, "policy": session.get(CreditPolicy, case.policy_id)}
    ids = {"county_id": village.township.county.public_id,
           "township_id": village.township.public_id,
           **{f"{kind}_id": row.public_id for kind, row in rows.items()}}
    return Side(ids), rows


def _servicing(session: Any, case: Any, farmer: Any, village: Any) -> dict[str, Any]:
    """The side's servicing objects: an open revolving line of ``farmer``'s (so a farmer's
    own draws, draw list and quote answer 2xx), a disbursement on it with its payout
    instruction, and a relief case. Rows written directly: the walk is about scoping."""
    loan = Loan(application_id=case.id, farmer_id=farmer.id, village_id=village.id,
                product_id=case.product_id, kind="line", repayment_type="revolving_line",
                crop=case.crop, county_code=village.township.county.code, terms=case.terms,
                principal_fen=case.amount_fen, term_months=case.term_months,
                annual_rate_bp=435, penalty_rate_bp=652, day_count="ACT/360",
                status="active", disbursed_on=date(2026, 1, 1), limit_fen=case.amount_fen,
                line_ends_on=date(2040, 1, 1), next_review_on=date(2040, 1, 1))
    session.add(loan)
    session.flush()
    disbursement = Disbursement(loan_id=loan.id, seq=1, amount_fen=100_00, status="initiated",
                                initiated_by="system")
    session.add(disbursement)
    session.flush()
    payout = payouts.OutboxAdapter().instruct(session, disbursement, loan)  # pending
    relief_case = ReliefCase(loan_id=loan.id, kind="manual", opened_on=date(2026, 11, 1),
                             opened_by="system", reason="受灾")
    session.add(relief_case)
    session.flush()
    return {"loan": loan, "disbursement": disbursement, "payout": payout,
            "relief_case": relief_case}


def _routes(app: Any) -> list[tuple[str, Any]]:
    found = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(API) and UUID_ARG.search(rule.rule):
            found.extend((method, rule) for method in sorted(rule.methods - {"HEAD",
                                                                             "OPTIONS"}))
    return found


@dataclass
class Walker:
    """Calls every UUID route as one principal."""

    app: Any
    client: Any
    principal: Principal
    headers: dict[str, str]

    def allowed(self, method: str, rule: Any) -> bool:
        access_rule = rule_for(self.app.view_functions[rule.endpoint], method)
        assert access_rule is not None
        try:
            access_rule.check(self.principal)
        except NongdaiError:
            return False
        return True

    def call(self, method: str, rule: Any, side: Side) -> Any:
        relative = rule.rule.removeprefix(API)
        names = UUID_ARG.findall(rule.rule)
        unknown = [name for name in names if name not in side.ids]
        assert not unknown, f"{method} {rule.rule}: add objects of kind {unknown} to this test"
        values = {name: side.ids[name] for name in names}
        path = self.app.url_map.bind("localhost").build(rule.endpoint, values)
        raw = RAW.get((method, relative))
        if raw is not None:
            return self.client.open(path, method=method, data=raw.get("data"),
                                    headers={**self.headers, **raw["headers"]})
        body = PATCH_BODY if method == "PATCH" else BODIES.get((method, relative))
        headers = self.headers
        if method == "POST":
            assert (method, relative) in BODIES, f"POST {rule.rule}: add a valid body to BODIES"
            headers = creating(headers)
        return self.client.open(path, method=method, headers=headers,
                                **({"json": body} if body is not None else {}))

    def walk(self, own: Side, other: Side) -> dict[str, int]:
        """Call each route with ``other``'s ids, then ``own``'s; the status expected of other."""
        outcome = {}
        for method, rule in _routes(self.app):
            label = f"{method} {rule.rule}"
            response = self.call(method, rule, other)
            if not self.allowed(method, rule):
                assert_problem(response, 403, "forbidden")
                assert_problem(self.call(method, rule, own), 403, "forbidden")
                outcome[label] = 403
                continue
            if set(UUID_ARG.findall(rule.rule)) <= BANK_WIDE:
                assert response.status_code < 300, (label, response.get_json())
                outcome[label] = response.status_code
                continue
            assert_problem(response, 404, "not-found")
            mine = self.call(method, rule, own)
            assert mine.status_code < 300 or (
                label in STATE_BOUND and mine.status_code == 409), (label, mine.get_json())
            outcome[label] = 404
        return outcome


@pytest.fixture
def sides(session: Any) -> tuple[tuple[Side, dict[str, Any]], tuple[Side, dict[str, Any]]]:
    a, b = _side(session), _side(session)
    session.commit()
    return a, b


def _walker(app: Any, client: Any, session: Any, kind: str, row: Any) -> Walker:
    principal = Principal(kind=kind, id=row.id, public_id=row.public_id,
                          roles=frozenset({kind}))
    # A coordinator signs in on a phone (a device-bound session), as sync routes require.
    headers = (f.device_headers(session, row)[0] if kind == "coordinator"
               else f.auth_headers(session, row))
    return Walker(app, client, principal, headers)


# Servicing routes for staff only: 403 for coordinators and farmers, whoever's the object.
SERVICING_STAFF = {
    "POST /api/v1/loans/<uuid:loan_id>/disbursements",
    "POST /api/v1/disbursements/<uuid:disbursement_id>/authorise",
    "POST /api/v1/disbursements/<uuid:disbursement_id>/reject",
    "POST /api/v1/payouts/<uuid:payout_id>/confirm",
    "POST /api/v1/payouts/<uuid:payout_id>/fail",
    "POST /api/v1/loans/<uuid:loan_id>/line-reviews",
    "GET /api/v1/loans/<uuid:loan_id>/line-reviews",
    "POST /api/v1/loans/<uuid:loan_id>/repayments",
    "POST /api/v1/loans/<uuid:loan_id>/refunds",
    "POST /api/v1/loans/<uuid:loan_id>/reschedules",
    "GET /api/v1/relief-cases/<uuid:relief_case_id>",
    "POST /api/v1/relief-cases/<uuid:relief_case_id>/actions",
}


def test_a_coordinator_gets_404_for_everything_of_another_village(
        app: Any, client: Any, session: Any, sides: Any) -> None:
    (own, rows), (other, _) = sides
    outcome = _walker(app, client, session, "coordinator", rows["coordinator"]).walk(own, other)
    assert {label for label, status in outcome.items() if status == 404} >= {
        "GET /api/v1/counties/<uuid:county_id>",
        "GET /api/v1/townships/<uuid:township_id>",
        "GET /api/v1/villages/<uuid:village_id>",
        "GET /api/v1/stations/<uuid:station_id>",
        "GET /api/v1/farmers/<uuid:farmer_id>",
        "PATCH /api/v1/farmers/<uuid:farmer_id>",
        "GET /api/v1/farmers/<uuid:farmer_id>/consents",
        "POST /api/v1/farmers/<uuid:farmer_id>/consents",
        "POST /api/v1/devices/<uuid:device_id>/revoke",
        "GET /api/v1/applications/<uuid:application_id>",
        "POST /api/v1/applications/<uuid:application_id>/field-checks",
        "PATCH /api/v1/sync/uploads/<uuid:upload_id>",
        "DELETE /api/v1/sync/uploads/<uuid:upload_id>",
        "GET /api/v1/sync/devices/<uuid:device_id>",
        "GET /api/v1/loans/<uuid:loan_id>",
    }
    assert {label for label, status in outcome.items() if status == 403} >= {
        "POST /api/v1/sync/conflicts/<uuid:conflict_id>/resolve",
        "PATCH /api/v1/villages/<uuid:village_id>",
        "PATCH /api/v1/stations/<uuid:station_id>",
        "GET /api/v1/coordinators/<uuid:coordinator_id>",
        "PATCH /api/v1/coordinators/<uuid:coordinator_id>",
        "GET /api/v1/staff/<uuid:staff_id>",
        "PATCH /api/v1/staff/<uuid:staff_id>",
        "POST /api/v1/consents/<uuid:consent_id>/revoke",
        *SERVICING_STAFF,  # a coordinator sees loans; servicing them is the bank's
        "GET /api/v1/applications/<uuid:application_id>/offer",  # the farmer's (and staff's)
        "POST /api/v1/applications/<uuid:application_id>/accept",
        "POST /api/v1/loans/<uuid:loan_id>/draws",
        "GET /api/v1/loans/<uuid:loan_id>/draws",
        "GET /api/v1/loans/<uuid:loan_id>/quote",
    }


def test_a_farmer_gets_404_for_everything_but_their_own(
        app: Any, client: Any, session: Any, sides: Any) -> None:
    (own, rows), (other, _) = sides
    farmer = rows["farmer"]
    neighbour = f.farmer(session, rows["village"])  # same village, still not theirs
    their_case = lending.application(session, neighbour)
    theirs = _servicing(session, their_case, neighbour, rows["village"])  # their line, ...
    neighbours = Side({**other.ids, "farmer_id": neighbour.public_id,
                       "consent_id": consent(session, neighbour).public_id,
                       "application_id": their_case.public_id,
                       **{f"{kind}_id": row.public_id for kind, row in theirs.items()}})
    session.commit()
    walker = _walker(app, client, session, "farmer", farmer)
    for others in (other, neighbours):
        outcome = walker.walk(own, others)
        assert {label for label, status in outcome.items() if status == 404} >= {
            "GET /api/v1/farmers/<uuid:farmer_id>",
            "GET /api/v1/farmers/<uuid:farmer_id>/consents",
            "POST /api/v1/farmers/<uuid:farmer_id>/consents",
            "POST /api/v1/consents/<uuid:consent_id>/revoke",
            "GET /api/v1/villages/<uuid:village_id>",
            "GET /api/v1/applications/<uuid:application_id>",
            "POST /api/v1/applications/<uuid:application_id>/withdraw",
            "GET /api/v1/applications/<uuid:application_id>/offer",
            "POST /api/v1/applications/<uuid:application_id>/accept",
            "GET /api/v1/loans/<uuid:loan_id>",
            "POST /api/v1/loans/<uuid:loan_id>/draws",
            "GET /api/v1/loans/<uuid:loan_id>/draws",
            "GET /api/v1/loans/<uuid:loan_id>/quote",
        }
        assert {label for label, status in outcome.items() if status == 403} >= SERVICING_STAFF
        own.ids["consent_id"] = consent(session, farmer).public_id  # the walk revoked it
        session.commit()


def test_the_walk_covers_every_uuid_route(app: Any) -> None:
    kinds: set[str] = set()
    for _, rule in _routes(app):
        kinds.update(UUID_ARG.findall(rule.rule))
    assert kinds >= {"county_id", "township_id", "village_id", "station_id", "farmer_id",
                     "consent_id", "coordinator_id", "staff_id", "loan_id", "disbursement_id",
                     "payout_id", "relief_case_id"}

"""Fuzz every documented operation as an admin (schemathesis over the WSGI app), with every
schemathesis check but those listed in EXCLUDED, each with its reason.

Valid and invalid inputs alike: no answer is a 5xx, every answer's status, content type,
headers and body are the ones the document declares, valid input is accepted and invalid
input refused. Bounded and derandomised, so it runs the same examples every time.
"""

from __future__ import annotations

import contextvars
import json
import re
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.core.failures import FailureGroup
from schemathesis.openapi.checks import RejectedPositiveData

from core.idempotency import HEADER
from core.jobs import business_date
from core.people import idnumber
from lending.ledger import accounts
from lending.ledger.posting import Line, post
from lending.policy.models import CreditPolicy
from lending.servicing import payouts
from lending.servicing.models import Disbursement, Installment, Loan
from lending.servicing.relief_models import ReliefCase
from sync.push.models import SyncConflict
from tests import factories
from tests.core.test_people_helpers import consent
from tests.lending import review_factories as lending

EXAMPLES = 25
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    phases=[Phase.explicit, Phase.generate],  # report the first failure as is
                    suppress_health_check=list(HealthCheck))

# Checks not run, by name, and why. Everything else in schemathesis.checks runs on every case.
# These three would pass vacuously here: they act only inside a stateful run or with several
# identities configured, and return without looking at anything otherwise.
EXCLUDED = {
    # Stateful checks: they follow a resource across calls through OpenAPI links (create, then
    # read it back or delete it) and need a scenario recorder; this test sends single calls.
    "use_after_free": "needs a stateful run (DELETE then GET through links); no DELETE here",
    "ensure_resource_availability": "needs a stateful run (POST then GET through links)",
    # Authorization probes that need a second identity configured in schemathesis; the
    # equivalent is tested directly: tests/core/test_authz_routes.py (401 without a token on
    # every route) and tests/core/test_scoping.py (404 across villages).
    "object_level_authorization": "needs a second principal's auth configured; see "
                                  "tests/core/test_scoping.py",
}

# 422s that valid-looking input earns from rules JSON Schema cannot state, by operation: the
# named problem codes only, so anything else still fails.
BUSINESS_RULES = {
    "POST /api/v1/townships": {"township-code-mismatch"},  # no county has the code's prefix
    "POST /api/v1/villages": {"village-code-mismatch"},  # no township has the code's prefix
    "POST /api/v1/stations": {"village-outside-county"},
    "PATCH /api/v1/stations/{station_id}": {"village-outside-county"},
    "POST /api/v1/products": {"product-invalid"},  # unknown county or crop, min above max
    "PATCH /api/v1/products/{product_id}": {"product-invalid"},
    "POST /api/v1/credit-policies": {"credit-policy-invalid"},  # a JDM that does not compile
}


# 422 ``validation-failed`` on these fields of an operation only: rules of the business date or
# of one field depending on another, which the document states in words only.
FIELD_RULES = {
    "GET /api/v1/loans/{loan_id}/quote": {"on"},  # not before the business date
    "POST /api/v1/loans/{loan_id}/line-reviews": {"limit_fen"},  # required to lower a limit
}

ID_SHAPE = re.compile("[0-9]{17}[0-9Xx]")
KEY_SHAPE = re.compile("[\x20-\x7e]{1,200}")

# Fields whose valid values JSON Schema cannot describe: a validation failure on these alone is
# the server doing its job on schema-valid input.
OPAQUE = {
    "cursor": "only a cursor the API issued (an encoded row id) is a valid one",
    "decision_model": "a JDM document; NUL is refused in any key or string of it, which JSON "
                      "Schema cannot state of free-form JSON",
}


@schemathesis.serializer("application/offset+octet-stream")
def tus_chunk(_ctx: Any, value: Any) -> bytes:
    """A tus chunk (PATCH /sync/uploads/{upload_id}) is raw bytes; schemathesis knows no
    serializer for its media type. A generated non-string (a negative case) goes as JSON."""
    if isinstance(value, bytes):
        return value
    return value.encode() if isinstance(value, str) else json.dumps(value).encode()


def checks() -> list[Any]:
    """Every registered check but the excluded ones (failing loudly if one was renamed)."""
    load_all_checks()
    every = {check.__name__: check for check in CHECKS.get_all()}
    assert set(EXCLUDED) <= set(every), set(EXCLUDED) - set(every)
    return [check for name, check in every.items() if name not in EXCLUDED]


def _valid_id_numbers(case: Any) -> None:
    """An ID number the schema deems valid is made one: its check digit and birth date are
    rules the pattern cannot state. One the schema refuses (a negative case) is left alone."""
    value = case.body.get("id_number") if isinstance(case.body, dict) else None
    if isinstance(value, str) and ID_SHAPE.fullmatch(value.strip()):
        seed = sum(map(ord, value))  # deterministic, unlike hash()
        born = date(1950 + seed % 60, 1 + seed % 12, 1 + seed % 28)
        case.body["id_number"] = idnumber.make("330521", born, seed)


def _fresh_key(case: Any) -> None:
    """A valid Idempotency-Key is made unique: the examples reuse generated keys with other
    bodies, which the API rightly refuses (422), a rule of history, not of the schema. An
    invalid key (a negative case) is left alone."""
    key = (case.headers or {}).get(HEADER)
    if isinstance(key, str) and KEY_SHAPE.fullmatch(key):
        case.headers[HEADER] = key[:160] + uuid.uuid4().hex


def _tolerated(label: str, failure: BaseException, response: Any) -> bool:
    """A positive case refused by a rule JSON Schema cannot state (see BUSINESS_RULES)."""
    if not isinstance(failure, RejectedPositiveData) or response.status_code != 422:
        return False
    problem = json.loads(response.content)
    if problem["code"] in BUSINESS_RULES.get(label, set()):
        return True
    return problem["code"] == "validation-failed" and set(problem.get("errors", {})) <= set(
        OPAQUE) | FIELD_RULES.get(label, set())


def fuzz(operation: Any, mode: GenerationMode, sign_in: Callable[[], dict[str, str]],
         known: dict[str, str] | None = None) -> list[str]:
    """Run one operation's examples; the first failure, described, or nothing.

    Path parameters named in ``known`` are fixed to those existing rows' ids, so that the
    examples reach the handler instead of stopping at 404.
    """
    found: list[str] = []
    names = re.findall(r"{(\w+)}", operation.path)
    fixed = {name: value for name, value in (known or {}).items() if name in names}
    selected = checks()

    @SETTINGS
    @given(operation.as_strategy(generation_mode=mode, path_parameters=fixed or None))
    def run(case: Any) -> None:
        _valid_id_numbers(case)
        _fresh_key(case)
        headers = sign_in()
        case.headers = {**(case.headers or {}), **headers}  # what is sent, as the checks see it
        responses: list[Any] = []

        def call() -> None:
            response = case.call(headers=headers)
            responses.append(response)
            case.validate_response(response, checks=selected, headers=headers)

        try:  # in a context of its own, as under a WSGI server (not the test's session)
            contextvars.Context().run(call)
        except FailureGroup as group:
            wrong = [failure for failure in group.exceptions
                     if not _tolerated(operation.label, failure, responses[0])]
            if wrong and not found:
                found.append(f"{operation.label} [{mode.value}] {wrong[0]} <- path="
                             f"{case.path_parameters} query={case.query} body={case.body!r} "
                             f"-> {responses[0].status_code} {responses[0].content[:400]!r}")

    run()
    return found


@pytest.fixture
def sign_in(session: Any) -> Callable[[], dict[str, str]]:
    """A fresh admin session per call: fuzzing sign-out must not end the others' tokens."""
    admin = factories.staff(session)
    return lambda: factories.auth_headers(session, admin)


@pytest.fixture
def known(session: Any) -> dict[str, str]:
    """One row of each kind the paths name (none of them the fuzzing admin)."""
    village = factories.village(session)
    station = factories.station(session, [village])
    farmer = factories.farmer(session, village)
    rows = {"county_id": village.township.county, "township_id": village.township,
            "village_id": village, "station_id": station,
            "coordinator_id": factories.coordinator(session, station),
            "farmer_id": farmer, "consent_id": consent(session, farmer),
            "staff_id": factories.staff(session, roles=("reviewer",))}
    case = lending.application(session, farmer)  # under review, with a decision
    rows.update(application_id=case, product_id=case.product,
                policy_id=session.get(CreditPolicy, case.policy_id))
    _, device = factories.device_tokens(session, rows["coordinator_id"])
    conflict = SyncConflict(kind="fuzz", entity_id=farmer.public_id, field="phone",
                            server_value="a", device_value="b", device_id=device.id,
                            op_id=uuid.uuid4(), base_version=1)
    session.add(conflict)
    session.flush()
    rows.update(device_id=device, conflict_id=conflict, **_servicing(session, case, farmer))
    ids = {name: str(row.public_id) for name, row in rows.items()}
    session.commit()
    return ids


def _servicing(session: Any, case: Any, farmer: Any) -> dict[str, Any]:
    """An active term loan of ``farmer``'s (booked through the ledger, one installment), its
    disbursement and payout instruction, and a relief case on it: the servicing routes'
    objects, written directly."""
    day = business_date()
    loan = Loan(application_id=case.id, farmer_id=farmer.id, village_id=farmer.village_id,
                product_id=case.product_id, kind="term", repayment_type="bullet_at_harvest",
                crop=case.crop, county_code=farmer.village.township.county.code,
                terms=case.terms, principal_fen=case.amount_fen, term_months=case.term_months,
                annual_rate_bp=435, penalty_rate_bp=652, day_count="ACT/360", status="active",
                disbursed_on=day, maturity_date=day + timedelta(days=240))
    session.add(loan)
    session.flush()
    journal = post(session, kind="disbursement", reference=f"{loan.public_id}:1",
                   business_date=day, actor="system", loan_id=loan.id,
                   lines=[Line(accounts.LOAN_PRINCIPAL, case.amount_fen, loan.id),
                          Line(accounts.PAYOUT_CLEARING, -case.amount_fen)])
    disbursement = Disbursement(loan_id=loan.id, seq=1, amount_fen=case.amount_fen,
                                status="authorised", initiated_by="system", business_date=day,
                                journal_id=journal.id)
    session.add_all([disbursement, Installment(
        loan_id=loan.id, seq=1, due_date=loan.maturity_date, principal_due_fen=case.amount_fen,
        interest_due_fen=10_000)])
    session.flush()
    payout = payouts.OutboxAdapter().instruct(session, disbursement, loan)  # pending
    relief_case = ReliefCase(loan_id=loan.id, kind="manual", opened_on=day, opened_by="system",
                             reason="受灾")
    session.add(relief_case)
    session.flush()
    return {"loan_id": loan, "disbursement_id": disbursement, "payout_id": payout,
            "relief_case_id": relief_case}


def operations(app: Any) -> list[Any]:
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


def test_every_operation_passes_every_check(
        app: Any, sign_in: Callable[[], dict[str, str]], known: dict[str, str]) -> None:
    every = operations(app)
    assert len(every) > 35

    failures = [failure for operation in every
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
                for failure in fuzz(operation, mode, sign_in, known)]

    assert failures == [], "\n\n".join(failures)


SERVICING = re.compile(r"/api/v1/(loans|disbursements|payouts|payments|relief-cases|portfolio)"
                       r"|/api/v1/applications/{application_id}/(offer|accept)")


def test_servicing_operations_pass_every_check_as_bank_staff(
        app: Any, session: Any, known: dict[str, str]) -> None:
    """The servicing operations again, as staff with every bank role: an admin alone is
    refused (403) by most of them before their handlers run."""
    banker = factories.staff(session, roles=("admin", "approver", "reviewer"))
    session.commit()
    servicing = [op for op in operations(app) if SERVICING.match(op.path)]
    assert len(servicing) >= 20

    failures = [failure for operation in servicing
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
                for failure in fuzz(operation, mode,
                                    lambda: factories.auth_headers(session, banker), known)]

    assert failures == [], "\n\n".join(failures)


def test_the_fuzzer_reports_a_server_error(app: Any, sign_in: Callable[[], dict[str, str]],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from core.places import services  # noqa: PLC0415

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(services, "create_county", broken)
    (create,) = [op for op in operations(app) if op.label == "POST /api/v1/counties"]

    (failure,) = fuzz(create, GenerationMode.POSITIVE, sign_in)

    assert failure.startswith("POST /api/v1/counties [positive]")
    assert "Server error" in failure


def test_the_fuzzer_reports_an_undeclared_status(app: Any, sign_in: Callable[[], dict[str, str]],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from core.errors import NotFound  # noqa: PLC0415
    from core.places import views  # noqa: PLC0415

    def missing(*_args: Any, **_kwargs: Any) -> Any:
        raise NotFound()

    monkeypatch.setattr(views, "paginate", missing)  # GET /counties declares no 404
    (listing,) = [op for op in operations(app) if op.label == "GET /api/v1/counties"]

    (failure,) = fuzz(listing, GenerationMode.POSITIVE, sign_in)

    assert "Undocumented status code" in failure

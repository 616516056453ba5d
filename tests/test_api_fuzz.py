"""Fuzz every documented operation as an admin (schemathesis over the WSGI app).

Valid and invalid inputs alike: no answer is a 5xx, and every error answer is a problem
document. Bounded and derandomised, so it runs the same examples every time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from tests import factories

EXAMPLES = 20
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    phases=[Phase.explicit, Phase.generate],  # report the first failure as is
                    suppress_health_check=list(HealthCheck))


def problems_in(response: Any) -> list[str]:
    """What is wrong with one answer (nothing, for a good one)."""
    status = response.status_code
    if status >= 500:
        return [f"{status}: {response.content[:300]!r}"]
    if status < 400:
        return []
    content_type = (response.headers.get("content-type") or [""])[0]
    if not content_type.startswith("application/problem+json"):
        return [f"{status} answered as {content_type!r}"]
    body = json.loads(response.content)
    missing = {"type", "title", "status", "detail", "code"} - body.keys()
    return [f"{status} problem without {sorted(missing)}"] if missing else []


def fuzz(operation: Any, mode: GenerationMode, sign_in: Callable[[], dict[str, str]],
         known: dict[str, str] | None = None) -> list[str]:
    """Run one operation's examples; the first bad answer, described, or nothing.

    Path parameters named in ``known`` are fixed to those existing rows' ids, so that the
    examples reach the handler instead of stopping at 404.
    """
    found: list[str] = []
    names = re.findall(r"{(\w+)}", operation.path)
    fixed = {name: value for name, value in (known or {}).items() if name in names}

    @SETTINGS
    @given(operation.as_strategy(generation_mode=mode, path_parameters=fixed or None))
    def run(case: Any) -> None:
        response = case.call(headers=sign_in())
        wrong = problems_in(response)
        if wrong and not found:
            found.append(f"{operation.label} [{mode.value}] {wrong[0]} <- "
                         f"path={case.path_parameters} query={case.query} body={case.body!r}")

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
    rows = {"county_id": village.township.county, "township_id": village.township,
            "village_id": village, "station_id": station,
            "coordinator_id": factories.coordinator(session, station),
            "farmer_id": factories.farmer(session, village),
            "staff_id": factories.staff(session, roles=("reviewer",))}
    ids = {name: str(row.public_id) for name, row in rows.items()}
    session.commit()
    return ids


def operations(app: Any) -> list[Any]:
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


def test_no_operation_fails_or_answers_outside_problem_json(
        app: Any, sign_in: Callable[[], dict[str, str]], known: dict[str, str]) -> None:
    every = operations(app)
    assert len(every) > 20

    failures = [failure for operation in every
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
                for failure in fuzz(operation, mode, sign_in, known)]

    assert failures == []


def test_the_fuzzer_reports_a_server_error(app: Any, sign_in: Callable[[], dict[str, str]],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from core.places import services  # noqa: PLC0415

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(services, "create_county", broken)
    (create,) = [op for op in operations(app) if op.label == "POST /api/v1/counties"]

    (failure,) = fuzz(create, GenerationMode.POSITIVE, sign_in)

    assert failure.startswith("POST /api/v1/counties [positive] 500")

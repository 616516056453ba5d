"""Loan products (lending.products): the admin API, the rules on terms, what applications ask of
a product (get_offerable, check_terms) and the demo products."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from core.api import FIXED, SERVER_OWNED
from core.audit import AuditEvent
from core.db import utcnow
from core.demo import SEEDERS
from core.errors import NotFound
from core.i18n import in_locale
from lending.policy.models import CreditPolicy, CropReference
from lending.products import services
from lending.products.demo import seed_demo, seeder
from lending.products.models import LoanProduct
from tests import factories as f
from tests.core.test_people_helpers import API, World, assert_problem, build_world, creating

PRODUCTS = f"{API}/products"


@pytest.fixture
def world(session: Any) -> World:
    return build_world(session)


@pytest.fixture
def admin(session: Any, world: World) -> dict[str, str]:
    return f.auth_headers(session, world.admin)


def _body(world: World, **overrides: Any) -> dict[str, Any]:
    """A seasonal planting loan (春耕贷) serving the world's county."""
    return {"code": "spring-planting", "name": "春耕贷", "repayment_type": "bullet_at_harvest",
            "min_amount_fen": 100_000, "max_amount_fen": 30_000_000,
            "min_term_months": 3, "max_term_months": 12, "annual_rate_bp": 435,
            "crops": ["rice", "wheat"], "county_codes": [world.county.code],
            "auto_ceiling_fen": 5_000_000, **overrides}


def _create(session: Any, world: World, **overrides: Any) -> LoanProduct:
    body = _body(world, **overrides)
    product = services.create_product(session, **body)
    session.commit()
    return product


def _audits(session: Any, action: str) -> list[AuditEvent]:
    rows = list(session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)
                                .order_by(AuditEvent.id)))
    session.rollback()
    return rows


def _codes(response: Any) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [item["code"] for item in response.get_json()["items"]]


# --- create and read ----------------------------------------------------------------------------

def test_admin_creates_a_product_and_everyone_reads_it(client: Any, session: Any, world: World,
                                                       admin: dict[str, str]) -> None:
    response = client.post(PRODUCTS, json=_body(world, crops=["wheat", "rice", "wheat"]),
                           headers=creating(admin))

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["crops"] == ["rice", "wheat"]  # sorted, without repeats
    assert body["grace_months"] == 0
    assert body["day_count"] == "ACT/360"
    assert body["description"] == ""
    assert body["is_active"] is True
    (event,) = _audits(session, "loan_product.create")
    assert event.object_id == body["id"]
    assert event.summary["code"] == "spring-planting"
    assert event.summary["annual_rate_bp"] == 435
    for reader in (world.farmer_a, world.coordinator_b):
        headers = f.auth_headers(session, reader)
        got = client.get(f"{PRODUCTS}/{body['id']}", headers=headers)
        assert got.status_code == 200
        assert got.get_json() == body
        assert _codes(client.get(PRODUCTS, headers=headers)) == ["spring-planting"]


@pytest.mark.parametrize("who", ["farmer_a", "coordinator_a", "reviewer"])
def test_only_admins_create_and_change_products(client: Any, session: Any, world: World,
                                                who: str) -> None:
    product = _create(session, world)
    row = f.staff(session, ("reviewer", "approver")) if who == "reviewer" else getattr(world, who)
    headers = f.auth_headers(session, row)

    created = client.post(PRODUCTS, json=_body(world, code="other"), headers=creating(headers))
    changed = client.patch(f"{PRODUCTS}/{product.public_id}", json={"annual_rate_bp": 500},
                           headers=headers)

    assert_problem(created, 403, "forbidden")
    assert_problem(changed, 403, "forbidden")
    assert session.scalar(sa.select(sa.func.count()).select_from(LoanProduct)) == 1


def test_reading_products_needs_a_sign_in(client: Any, session: Any, world: World) -> None:
    product = _create(session, world)
    assert_problem(client.get(PRODUCTS), 401, "unauthorized")
    assert_problem(client.get(f"{PRODUCTS}/{product.public_id}"), 401, "unauthorized")


# --- validation ---------------------------------------------------------------------------------

# (overrides, status, problem code, field with the error). validation-failed: what the request
# schema can state; product-invalid: rules between fields and on registered places and crops.
RULES = [
    ({"min_amount_fen": 40_000_000}, "product-invalid", "min_amount_fen"),
    ({"min_term_months": 13}, "product-invalid", "min_term_months"),
    ({"auto_ceiling_fen": 30_000_001}, "product-invalid", "auto_ceiling_fen"),
    ({"grace_months": 12}, "product-invalid", "grace_months"),
    ({"county_codes": ["999999"]}, "product-invalid", "county_codes"),
    ({"crops": ["durian"]}, "product-invalid", "crops"),
    ({"crops": []}, "product-invalid", "crops"),  # a bullet at harvest needs a harvest
    ({"repayment_type": "revolving_line", "crops": [], "max_term_months": 48},
     "product-invalid", "max_term_months"),
    ({"annual_rate_bp": 0}, "validation-failed", "annual_rate_bp"),
    ({"annual_rate_bp": 2401}, "validation-failed", "annual_rate_bp"),
    ({"annual_rate_bp": 4.35}, "validation-failed", "annual_rate_bp"),
    ({"repayment_type": "balloon"}, "validation-failed", "repayment_type"),
    ({"county_codes": ["33052"]}, "validation-failed", "county_codes"),
    ({"county_codes": []}, "validation-failed", "county_codes"),
    ({"crops": ["Rice"]}, "validation-failed", "crops"),
    ({"code": "Spring Planting"}, "validation-failed", "code"),
    ({"min_amount_fen": 0}, "validation-failed", "min_amount_fen"),
    ({"day_count": "ACT/ACT"}, "validation-failed", "day_count"),
    ({"is_active": False}, "validation-failed", "is_active"),  # server-owned at creation
]


@pytest.mark.parametrize("rule", RULES, ids=[f"{field}-{code}" for _, code, field in RULES])
def test_invalid_products_are_422_with_the_field(client: Any, session: Any, world: World,
                                                 admin: dict[str, str],
                                                 rule: tuple[dict[str, Any], str, str]) -> None:
    overrides, code, field = rule
    response = client.post(PRODUCTS, json=_body(world, **overrides), headers=creating(admin))

    problem = assert_problem(response, 422, code)
    assert set(problem["errors"]) == {field}
    assert session.scalar(sa.select(sa.func.count()).select_from(LoanProduct)) == 0


def test_every_broken_rule_is_reported_at_once(client: Any, world: World,
                                               admin: dict[str, str]) -> None:
    body = _body(world, min_amount_fen=40_000_000, min_term_months=13, county_codes=["999999"],
                 crops=["durian"])
    problem = assert_problem(client.post(PRODUCTS, json=body, headers=creating(admin)), 422,
                             "product-invalid")
    assert set(problem["errors"]) == {"min_amount_fen", "min_term_months", "county_codes",
                                      "crops"}
    assert "999999" in problem["errors"]["county_codes"][0]


def test_the_service_holds_the_rules_the_schema_states(session: Any, world: World) -> None:
    """Callers other than the API (the demo seed) meet the same rules."""
    with pytest.raises(services.ProductInvalid) as caught:
        services.create_product(session, **_body(world, annual_rate_bp=0,
                                                 repayment_type="balloon", day_count="x"))
    assert set(caught.value.errors or {}) == {"annual_rate_bp", "repayment_type", "day_count"}


def test_codes_are_unique(client: Any, session: Any, world: World,
                          admin: dict[str, str]) -> None:
    _create(session, world)
    response = client.post(PRODUCTS, json=_body(world, name="春耕贷二期"),
                           headers=creating(admin))
    problem = assert_problem(response, 409, "product-code-taken")
    assert set(problem["errors"]) == {"code"}


def test_a_revolving_line_runs_up_to_three_years(client: Any, world: World,
                                                 admin: dict[str, str]) -> None:
    body = _body(world, code="household-line", repayment_type="revolving_line", crops=[],
                 min_term_months=1, max_term_months=36)
    response = client.post(PRODUCTS, json=body, headers=creating(admin))
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["crops"] == []


# --- crops from the credit policy ---------------------------------------------------------------

def _policy(session: Any, county: str, crops: list[str], days_ago: int = 1) -> CreditPolicy:
    policy = CreditPolicy(version=f"v{uuid.uuid4().hex[:8]}", description="test",
                          decision_model={}, created_by="system",
                          effective_from=utcnow() - timedelta(days=days_ago))
    session.add(policy)
    for crop in crops:
        session.add(CropReference(policy=policy, crop=crop, county_code=county,
                                  yield_kg_per_mu=400, price_fen_per_kg=240,
                                  insured_sum_fen_per_mu=95_000, planting_from="05-01",
                                  planting_to="06-15", harvest_from="09-15", harvest_to="10-31"))
    session.commit()
    return policy


def test_without_a_policy_the_default_crop_list_applies(session: Any, world: World) -> None:
    assert services.known_crops(session) == services.DEFAULT_CROPS
    assert {"rice", "wheat", "corn", "soybean"} <= services.DEFAULT_CROPS


def test_crops_are_those_of_the_policy_in_force(client: Any, session: Any, world: World,
                                                admin: dict[str, str]) -> None:
    product = _create(session, world, crops=["tea"])  # a default crop, before any policy
    _policy(session, world.county.code, ["rice", "wheat"], days_ago=2)
    _policy(session, world.county.code, ["rice", "corn"], days_ago=1)
    _policy(session, world.county.code, ["tea"], days_ago=-1)  # not yet in force
    assert services.known_crops(session) == {"rice", "corn"}

    refused = client.post(PRODUCTS, json=_body(world, code="wheat-loan", crops=["wheat"]),
                          headers=creating(admin))
    accepted = client.post(PRODUCTS, json=_body(world, code="corn-loan", crops=["corn"]),
                           headers=creating(admin))
    url = f"{PRODUCTS}/{product.public_id}"
    # A crop the policy stopped knowing does not block other changes, nor taking it off ...
    changed = client.patch(url, json={"annual_rate_bp": 450, "is_active": False},
                           headers=admin)
    # ... but it cannot be sent again.
    resent = client.patch(url, json={"crops": ["tea", "rice"]}, headers=admin)

    assert "wheat" in assert_problem(refused, 422, "product-invalid")["errors"]["crops"][0]
    assert accepted.status_code == 201, accepted.get_json()
    assert changed.status_code == 200, changed.get_json()
    assert set(assert_problem(resent, 422, "product-invalid")["errors"]) == {"crops"}


# --- idempotency --------------------------------------------------------------------------------

def test_a_retried_create_replays_the_first_answer(client: Any, session: Any, world: World,
                                                   admin: dict[str, str]) -> None:
    headers = creating(admin)
    first = client.post(PRODUCTS, json=_body(world), headers=headers)
    again = client.post(PRODUCTS, json=_body(world), headers=headers)
    other = client.post(PRODUCTS, json=_body(world, code="other"), headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert_problem(other, 422, "idempotency-key-reused")
    assert session.scalar(sa.select(sa.func.count()).select_from(LoanProduct)) == 1
    assert len(_audits(session, "loan_product.create")) == 1


# --- changes ------------------------------------------------------------------------------------

def test_admin_changes_terms_for_new_applications(client: Any, session: Any, world: World,
                                                  admin: dict[str, str]) -> None:
    product = _create(session, world)
    other = f.county(session, name="安吉县")
    session.commit()
    url = f"{PRODUCTS}/{product.public_id}"

    response = client.patch(url, json={"annual_rate_bp": 480, "name": "春耕贷",
                                       "county_codes": [other.code, world.county.code]},
                            headers=admin)

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["annual_rate_bp"] == 480
    assert body["county_codes"] == sorted([other.code, world.county.code])
    (event,) = _audits(session, "loan_product.update")
    assert event.summary["changed"] == ["annual_rate_bp", "county_codes"]  # name unchanged
    assert event.summary["annual_rate_bp"] == 480


def test_changes_are_checked_against_the_whole_product(client: Any, session: Any, world: World,
                                                       admin: dict[str, str]) -> None:
    product = _create(session, world)  # ceiling 50,000 yuan, amounts up to 300,000 yuan
    url = f"{PRODUCTS}/{product.public_id}"

    lowered = client.patch(url, json={"max_amount_fen": 4_000_000}, headers=admin)
    shortened = client.patch(url, json={"max_term_months": 2}, headers=admin)
    unknown = client.patch(url, json={"county_codes": ["999999"]}, headers=admin)

    assert set(assert_problem(lowered, 422, "product-invalid")["errors"]) == {
        "auto_ceiling_fen"}
    assert set(assert_problem(shortened, 422, "product-invalid")["errors"]) == {
        "min_term_months"}
    assert set(assert_problem(unknown, 422, "product-invalid")["errors"]) == {"county_codes"}
    session.refresh(product)
    assert (product.max_amount_fen, product.max_term_months) == (30_000_000, 12)


@pytest.mark.parametrize("refused", [
    ({"code": "renamed"}, FIXED),
    ({"repayment_type": "equal_instalments"}, FIXED),
    ({"id": str(uuid.uuid4())}, SERVER_OWNED),
])
def test_fixed_fields_cannot_be_patched(client: Any, session: Any, world: World,
                                        admin: dict[str, str],
                                        refused: tuple[dict[str, Any], str]) -> None:
    body, message = refused
    product = _create(session, world)
    response = client.patch(f"{PRODUCTS}/{product.public_id}", json=body,
                            headers={**admin, "Accept-Language": "en"})
    problem = assert_problem(response, 422, "validation-failed")
    assert problem["errors"] == {next(iter(body)): [message]}


def test_an_empty_patch_is_refused(client: Any, session: Any, world: World,
                                   admin: dict[str, str]) -> None:
    product = _create(session, world)
    assert_problem(client.patch(f"{PRODUCTS}/{product.public_id}", json={}, headers=admin),
                   422, "validation-failed")


def test_patching_an_unknown_product_is_404(client: Any, admin: dict[str, str]) -> None:
    response = client.patch(f"{PRODUCTS}/{uuid.uuid4()}", json={"annual_rate_bp": 450},
                            headers=admin)
    assert_problem(response, 404, "not-found")


def test_a_deactivated_product_is_hidden_from_farmers_and_coordinators(
        client: Any, session: Any, world: World, admin: dict[str, str]) -> None:
    product = _create(session, world)
    url = f"{PRODUCTS}/{product.public_id}"

    off = client.patch(url, json={"is_active": False}, headers=admin)

    assert off.status_code == 200
    assert off.get_json()["is_active"] is False
    (event,) = _audits(session, "loan_product.update")
    assert event.summary == {"changed": ["is_active"], "is_active": False}
    for reader in (world.farmer_a, world.coordinator_a):
        headers = f.auth_headers(session, reader)
        assert_problem(client.get(url, headers=headers), 404, "not-found")
        assert _codes(client.get(PRODUCTS, headers=headers)) == []
        assert _codes(client.get(f"{PRODUCTS}?is_active=false", headers=headers)) == []
    assert client.get(url, headers=admin).status_code == 200
    assert _codes(client.get(PRODUCTS, headers=admin)) == ["spring-planting"]
    assert _codes(client.get(f"{PRODUCTS}?is_active=false", headers=admin)) == [
        "spring-planting"]
    assert _codes(client.get(f"{PRODUCTS}?is_active=true", headers=admin)) == []
    on = client.patch(url, json={"is_active": True}, headers=admin)
    assert on.get_json()["is_active"] is True


# --- lists --------------------------------------------------------------------------------------

def test_lists_filter_by_county_and_crop_and_page(client: Any, session: Any, world: World,
                                                  admin: dict[str, str]) -> None:
    here, there = world.county.code, f.county(session, name="安吉县").code
    session.commit()
    _create(session, world, code="rice-here", crops=["rice"], county_codes=[here])
    _create(session, world, code="sweet-potato-there", crops=["sweet_potato"],
            county_codes=[there])
    _create(session, world, code="any-crop-both", repayment_type="equal_instalments",
            crops=[], county_codes=[here, there])
    _create(session, world, code="wheat-there", crops=["wheat"], county_codes=[there])

    def codes(query: str) -> list[str]:
        return _codes(client.get(f"{PRODUCTS}?{query}", headers=admin))

    assert codes(f"county_code={here}") == ["rice-here", "any-crop-both"]
    assert codes("crop=rice") == ["rice-here", "any-crop-both"]
    assert codes(f"crop=wheat&county_code={there}") == ["any-crop-both", "wheat-there"]
    assert codes("crop=sweetxpotato") == ["any-crop-both"]  # '_' is no wildcard
    assert codes("county_code=999999") == []
    assert_problem(client.get(f"{PRODUCTS}?county_code=3305", headers=admin), 422,
                   "validation-failed")

    seen, cursor = [], None
    while True:
        query = "limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(f"{PRODUCTS}?{query}", headers=admin).get_json()
        seen += [item["code"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["rice-here", "sweet-potato-there", "any-crop-both", "wheat-there"]


# --- what applications ask of a product ---------------------------------------------------------

def test_get_offerable_says_why_a_product_is_not_offered(session: Any, world: World) -> None:
    product = _create(session, world)  # rice and wheat, the world's county
    here = world.county.code

    assert services.get_offerable(session, product.public_id, here, "rice") is product
    cases = [(here, "corn", "crop"), (here, None, "crop"), ("330599", "rice", "county_code")]
    for county, crop, field in cases:
        with pytest.raises(services.ProductNotOffered) as caught:
            services.get_offerable(session, product.public_id, county, crop)
        assert set(caught.value.errors or {}) == {field}
        assert caught.value.status == 422
    with pytest.raises(NotFound):
        services.get_offerable(session, uuid.uuid4(), here, "rice")
    services.update_product(session, product, is_active=False)
    with pytest.raises(services.ProductNotOffered) as caught:
        services.get_offerable(session, product.public_id, here, "rice")
    assert set(caught.value.errors or {}) == {"product_id"}


def test_a_product_for_any_purpose_takes_any_crop_or_none(session: Any, world: World) -> None:
    product = _create(session, world, code="household-line", repayment_type="revolving_line",
                      crops=[], min_term_months=1, max_term_months=36)
    for crop in ("tea", None):
        assert services.get_offerable(session, product.public_id, world.county.code,
                                      crop) is product


def test_check_terms_holds_amount_and_term_to_the_range(session: Any, world: World) -> None:
    product = _create(session, world)  # 1,000-300,000 yuan, 3-12 months
    for amount, term in ((100_000, 3), (30_000_000, 12)):
        services.check_terms(product, amount, term)
    cases = [(99_999, 6, {"amount_fen"}), (30_000_001, 6, {"amount_fen"}),
             (1_000_000, 2, {"term_months"}), (1, 13, {"amount_fen", "term_months"})]
    for amount, term, fields in cases:
        with pytest.raises(services.TermsOutOfRange) as caught, in_locale("en"):
            services.check_terms(product, amount, term)
        assert set(caught.value.errors or {}) == fields
        assert caught.value.status == 422
        assert caught.value.code == "terms-out-of-range"
    assert "1,000 and 300,000 yuan" in caught.value.errors["amount_fen"][0]
    assert services.yuan(100_050) == "1,000.50"


def test_the_terms_snapshot_is_json_and_complete(session: Any, world: World) -> None:
    product = _create(session, world)
    snapshot = json.loads(json.dumps(services.terms_snapshot(product)))
    assert snapshot["product_id"] == str(product.public_id)
    assert snapshot["annual_rate_bp"] == 435
    assert snapshot["repayment_type"] == "bullet_at_harvest"
    assert set(services.TERMS) <= set(snapshot)


# --- demo ---------------------------------------------------------------------------------------

def test_seed_demo_creates_the_demo_products_once(session: Any, world: World) -> None:
    codes = [world.county.code]

    products = seed_demo(session, codes)
    session.commit()
    again = seed_demo(session, codes)

    by_type = {p.repayment_type: p for p in products}
    assert set(by_type) == {"bullet_at_harvest", "revolving_line", "equal_instalments",
                            "interest_monthly_principal_at_maturity"}
    planting, line = by_type["bullet_at_harvest"], by_type["revolving_line"]
    assert planting.name == "春耕贷"
    assert (planting.min_term_months, planting.max_term_months) == (3, 12)
    assert (planting.min_amount_fen, planting.max_amount_fen) == (100_000, 30_000_000)
    assert planting.auto_ceiling_fen == 5_000_000
    assert 435 <= planting.annual_rate_bp <= 500
    assert set(planting.crops) == {"rice", "wheat", "corn", "soybean"}
    assert "随借随还" in line.name
    assert (line.max_term_months, line.max_amount_fen, line.auto_ceiling_fen) == (
        36, 20_000_000, 3_000_000)
    assert all(p.county_codes == codes and p.is_active for p in products)
    assert [p.id for p in again] == [p.id for p in products]
    assert session.scalar(sa.select(sa.func.count()).select_from(LoanProduct)) == 4
    assert len(_audits(session, "loan_product.create")) == 4


def test_the_embedded_demo_seeds_products_for_every_county(app: Any, session: Any) -> None:
    assert seeder(session) is None  # no county yet: nothing to serve
    codes = sorted([f.county(session).code, f.county(session, name="安吉县").code])

    line = seeder(session)

    assert line is not None
    assert "春耕贷" in line
    products = list(session.scalars(sa.select(LoanProduct)))
    assert len(products) == 4
    assert all(p.county_codes == codes for p in products)
    assert seeder(session) == "demo data: loan products already present, left as is"
    assert session.scalar(sa.select(sa.func.count()).select_from(LoanProduct)) == 4
    assert seeder in app.extensions[SEEDERS]

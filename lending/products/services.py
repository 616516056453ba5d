"""Loan products: creating and changing them, and what an application asks of them.

Plain functions taking the session first; they flush and write the audit event, the caller's
boundary commits. Every rule on a product's terms is checked here (not only in the request
schema), so the demo seed and any future caller meet the same rules as the admin API.

A product is read when an application is submitted: :func:`get_offerable` and
:func:`check_terms` decide whether it may be offered, and the application stores
:func:`terms_snapshot`. Changing a product later therefore changes what *new* applications
get, never the terms of one already made.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from core import audit
from core.db import DbSession, utcnow
from core.errors import Conflict, NongdaiError, NotFound, ValidationFailed
from core.i18n import _, lazy_gettext
from core.places.models import County
from lending.policy.models import CreditPolicy, CropReference, current_at
from lending.products.models import DAY_COUNTS, MAX_RATE_BP, REPAYMENT_TYPES, LoanProduct

# The crops a product may name while no credit policy (with its crop table) is in force.
DEFAULT_CROPS = frozenset({"rice", "wheat", "corn", "soybean", "rapeseed", "peanut", "cotton",
                           "potato", "sweet_potato", "vegetables", "fruit", "tea"})
REVOLVING_MAX_MONTHS = 36  # a revolving household line (随借随还) runs at most three years

TERMS = ("code", "name", "repayment_type", "min_amount_fen", "max_amount_fen",
         "min_term_months", "max_term_months", "annual_rate_bp", "grace_months", "day_count",
         "crops", "county_codes", "auto_ceiling_fen")


class ProductCodeTaken(Conflict):
    code = "product-code-taken"
    title = lazy_gettext("A loan product with this code exists")


class ProductInvalid(ValidationFailed):
    """A rule between a product's fields, or on the counties and crops it names, is broken."""

    code = "product-invalid"
    title = lazy_gettext("The product's terms are inconsistent or unknown")


class ProductNotOffered(NongdaiError):
    """Inactive, or not serving the farmer's county, or not financing the crop."""

    status, code = 422, "product-not-offered"
    title = lazy_gettext("The product is not offered for this case")


class TermsOutOfRange(ValidationFailed):
    code = "terms-out-of-range"
    title = lazy_gettext("The amount or term is outside the product's range")


# --- rules ----------------------------------------------------------------------------------

def known_crops(session: DbSession) -> frozenset[str]:
    """The crops of the credit policy in force (its crop table), or :data:`DEFAULT_CROPS`
    while there is none: a product must not finance a crop the policy cannot price."""
    policy_id = session.scalar(current_at(utcnow()).with_only_columns(CreditPolicy.id))
    if policy_id is None:
        return DEFAULT_CROPS
    stmt = sa.select(CropReference.crop).where(CropReference.policy_id == policy_id).distinct()
    return frozenset(session.scalars(stmt)) or DEFAULT_CROPS


def _unknown_counties(session: DbSession, codes: Iterable[str]) -> list[str]:
    wanted = set(codes)
    found = set(session.scalars(sa.select(County.code).where(County.code.in_(sorted(wanted)))))
    return sorted(wanted - found)


def _range_errors(v: Mapping[str, Any]) -> dict[str, str]:
    """Rules between the amounts, terms and ceiling; one message per field."""
    errors: dict[str, str] = {}
    if v["min_amount_fen"] > v["max_amount_fen"]:
        errors["min_amount_fen"] = _("Must be at most max_amount_fen.")
    if v["min_term_months"] > v["max_term_months"]:
        errors["min_term_months"] = _("Must be at most max_term_months.")
    if v["auto_ceiling_fen"] > v["max_amount_fen"]:
        errors["auto_ceiling_fen"] = _("Must be at most max_amount_fen.")
    if v["grace_months"] >= v["max_term_months"]:
        errors["grace_months"] = _("Must be shorter than max_term_months.")
    return errors


def _kind_errors(v: Mapping[str, Any]) -> dict[str, str]:
    """Rules of the repayment type, the rate and the day count."""
    errors: dict[str, str] = {}
    if v["repayment_type"] not in REPAYMENT_TYPES:
        errors["repayment_type"] = _("Must be one of %(types)s.", types=", ".join(REPAYMENT_TYPES))
    elif v["repayment_type"] == "revolving_line" and v["max_term_months"] > REVOLVING_MAX_MONTHS:
        errors["max_term_months"] = _("A revolving line runs at most %(months)d months.",
                                      months=REVOLVING_MAX_MONTHS)
    elif v["repayment_type"] == "bullet_at_harvest" and not v["crops"]:
        errors["crops"] = _("A bullet at harvest needs the crops whose harvest repays it.")
    if not 0 < v["annual_rate_bp"] <= MAX_RATE_BP:
        errors["annual_rate_bp"] = _("Must be between %(min)d and %(max)d.", min=1,
                                       max=MAX_RATE_BP)
    if v["day_count"] not in DAY_COUNTS:
        errors["day_count"] = _("Must be one of %(conventions)s.",
                                conventions=", ".join(DAY_COUNTS))
    return errors


def _county_errors(session: DbSession, codes: list[str]) -> dict[str, str]:
    if not codes:
        return {"county_codes": _("Name at least one county.")}
    if unknown := _unknown_counties(session, codes):
        return {"county_codes": _("No registered county with the codes %(codes)s.",
                                  codes=", ".join(unknown))}
    return {}


def _crop_errors(session: DbSession, crops: list[str]) -> dict[str, str]:
    known = known_crops(session)
    if unknown := sorted(set(crops) - known):
        return {"crops": _("Not crops the credit policy knows: %(crops)s (known: %(known)s).",
                           crops=", ".join(unknown), known=", ".join(sorted(known)))}
    return {}


def check_product(session: DbSession, values: Mapping[str, Any],
                  sent: Iterable[str] | None = None) -> None:
    """Raise :class:`ProductInvalid` with every broken rule, by field.

    Counties and crops are looked up only when ``sent`` (default: all) includes them: a
    county or crop that stopped being known (a new policy) must not stop an admin from
    changing anything else, or from taking the product off.
    """
    sent = set(values if sent is None else sent)
    errors = {**_kind_errors(values), **_range_errors(values)}
    if "county_codes" in sent:
        errors.update(_county_errors(session, values["county_codes"]))
    if "crops" in sent:
        errors.update(_crop_errors(session, values["crops"]))
    if errors:
        raise ProductInvalid(_("Some of the product's terms are invalid; see errors"),
                             errors={field: [message] for field, message in errors.items()})


def _normalised(values: Mapping[str, Any]) -> dict[str, Any]:
    """Crops and counties as sorted lists without repeats (the order carries no meaning)."""
    out = dict(values)
    for key in ("crops", "county_codes"):
        if key in out:
            out[key] = sorted(set(out[key]))
    return out


# --- admin ----------------------------------------------------------------------------------

def _audit_terms(product: LoanProduct) -> dict[str, Any]:
    return {key: getattr(product, key) for key in TERMS}


def create_product(session: DbSession, **values: Any) -> LoanProduct:
    """Create a product from its terms (the keyword names are the model's columns)."""
    values = _normalised({"description": "", "grace_months": 0, "day_count": DAY_COUNTS[0],
                          "crops": [], **values})
    check_product(session, values)
    if session.scalar(sa.select(LoanProduct.id).where(LoanProduct.code == values["code"])):
        raise ProductCodeTaken(_("The product code %(code)s is taken", code=values["code"]),
                               errors={"code": [_("Already taken.")]})
    product = LoanProduct(**values)
    session.add(product)
    session.flush()
    audit.record(session, "loan_product.create", product, summary=_audit_terms(product))
    return product


def update_product(session: DbSession, product: LoanProduct, **changes: Any) -> LoanProduct:
    """Change a product's terms, or take it off (``is_active``), for new applications only:
    those already submitted keep the snapshot they were made with."""
    changes = _normalised(changes)
    check_product(session, {**_audit_terms(product), **changes}, sent=changes)
    changed = sorted(key for key, value in changes.items() if getattr(product, key) != value)
    for key in changed:
        setattr(product, key, changes[key])
    session.flush()
    audit.record(session, "loan_product.update", product, summary={
        "changed": changed, "is_active": product.is_active,
        **{key: getattr(product, key) for key in changed if key in TERMS}})
    return product


# --- what applications ask of a product -----------------------------------------------------

_BY_PUBLIC_ID = sa.select(LoanProduct).where(
    LoanProduct.public_id == sa.bindparam("public_id", type_=LoanProduct.public_id.type))
"""A product by its public id, built once (every application reads it)."""


def get_offerable(session: DbSession, product_public_id: uuid.UUID, county_code: str,
                  crop: str | None) -> LoanProduct:
    """The product, if it may be offered to a farmer of ``county_code`` for ``crop`` (None: the
    application names no crop, which only a product for any purpose accepts).

    404 when there is no such product; 422 ``product-not-offered`` when it is inactive, does
    not serve the county or does not finance the crop.
    """
    product = session.scalars(_BY_PUBLIC_ID, {"public_id": product_public_id}).first()
    if product is None:
        raise NotFound(_("No loan product with that id"))
    if not product.is_active:
        raise ProductNotOffered(_("%(name)s is no longer offered", name=product.name),
                                errors={"product_id": [_("Not offered any more.")]})
    if county_code not in product.county_codes:
        raise ProductNotOffered(_("%(name)s is not offered in this county", name=product.name),
                                errors={"county_code": [_("Not served by this product.")]})
    if product.crops and crop not in product.crops:
        raise ProductNotOffered(
            _("%(name)s finances %(crops)s only", name=product.name,
              crops=", ".join(product.crops)),
            errors={"crop": [_("Not financed by this product.")]})
    return product


def yuan(fen: int) -> str:
    """An amount as a person reads it: ``300,000`` or ``1,000.50`` (yuan)."""
    whole, cents = divmod(fen, 100)
    return f"{whole:,}" + (f".{cents:02d}" if cents else "")


def check_terms(product: LoanProduct, amount_fen: int, term_months: int) -> None:
    """422 ``terms-out-of-range`` (errors on ``amount_fen`` and ``term_months``) when the
    amount or the term is outside the product's range."""
    errors: dict[str, list[str]] = {}
    if not product.min_amount_fen <= amount_fen <= product.max_amount_fen:
        errors["amount_fen"] = [_("Must be between %(low)s and %(high)s yuan.",
                                  low=yuan(product.min_amount_fen),
                                  high=yuan(product.max_amount_fen))]
    if not product.min_term_months <= term_months <= product.max_term_months:
        errors["term_months"] = [_("Must be between %(low)d and %(high)d months.",
                                   low=product.min_term_months, high=product.max_term_months)]
    if errors:
        raise TermsOutOfRange(_("The amount or term is outside what %(name)s offers",
                                name=product.name), errors=errors)


def terms_snapshot(product: LoanProduct) -> dict[str, Any]:
    """The terms an application keeps (JSON): what was offered when it was submitted."""
    return {"product_id": str(product.public_id), **_audit_terms(product)}

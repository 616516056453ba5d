"""HTTP API for loan products: admins define them; everyone signed in reads the offer.

Staff see every product, active or not; farmers and coordinators only the active ones (an
inactive one reads as 404). Changing a product changes what new applications get: an
application keeps a snapshot of the terms it was submitted with.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from core.api import Blueprint, paginate, raises
from core.authz import access, get_visible, visible
from core.db import db
from core.idempotency import idempotent
from lending.products import schemas, services
from lending.products.models import LoanProduct

blp = Blueprint("products", __name__, description="Loan products: amounts, terms, rates, reach")


def _json_list_holds(column: Any, value: str) -> sa.ColumnElement[bool]:
    """Whether the JSON list in ``column`` holds the string ``value``, on every backend.

    Exact for the values stored here: county and crop codes are digits, lower-case letters and
    ``_``, which JSON never escapes, so ``"value"`` with its quotes appears in the list's text
    exactly when it is an element (``autoescape`` keeps ``_`` from being a wildcard).
    """
    return sa.cast(column, sa.Text).contains(f'"{value}"', autoescape=True)


def _filtered(stmt: sa.Select[Any], args: dict[str, Any]) -> sa.Select[Any]:
    if args.get("county_code"):
        stmt = stmt.where(_json_list_holds(LoanProduct.county_codes, args["county_code"]))
    if args.get("crop"):
        any_crop = sa.cast(LoanProduct.crops, sa.Text) == "[]"
        stmt = stmt.where(sa.or_(any_crop, _json_list_holds(LoanProduct.crops, args["crop"])))
    if "is_active" in args:
        stmt = stmt.where(LoanProduct.is_active.is_(args["is_active"]))
    return stmt


@blp.route("/products", methods=["POST"])
@access("admin")
@raises(services.ProductInvalid, services.ProductCodeTaken)
@idempotent
@blp.arguments(schemas.LoanProductCreateSchema)
@blp.response(201, schemas.LoanProductSchema)
def create_product(data: dict[str, Any]) -> LoanProduct:
    """Define a loan product: amounts, terms, rate, repayment type, counties and crops."""
    return services.create_product(db.session, **data)


@blp.route("/products", methods=["GET"])
@access()
@blp.arguments(schemas.LoanProductListArgs, location="query")
@blp.response(200, schemas.LoanProductPage)
def list_products(args: dict[str, Any]) -> dict[str, Any]:
    """List loan products, optionally those serving a county or financing a crop."""
    stmt = _filtered(sa.select(LoanProduct).where(visible(LoanProduct)), args)
    return paginate(db.session, stmt, LoanProduct.public_id, args)


@blp.route("/products/<uuid:product_id>", methods=["GET"])
@access()
@blp.response(200, schemas.LoanProductSchema)
def get_product(product_id: uuid.UUID) -> LoanProduct:
    """Read one loan product."""
    return get_visible(db.session, LoanProduct, product_id)


@blp.route("/products/<uuid:product_id>", methods=["PATCH"])
@access("admin")
@raises(services.ProductInvalid)
@blp.arguments(schemas.LoanProductUpdateSchema)
@blp.response(200, schemas.LoanProductSchema)
def update_product(data: dict[str, Any], product_id: uuid.UUID) -> LoanProduct:
    """Change a product's terms, or deactivate it (``is_active: false``).

    Applies to applications submitted from now on; those already submitted keep the terms
    they were made with.
    """
    product = get_visible(db.session, LoanProduct, product_id)
    return services.update_product(db.session, product, **data)

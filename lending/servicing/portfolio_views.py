"""HTTP API for portfolio at risk: ``GET /portfolio/par`` (staff: everything; a coordinator:
the villages of their station)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from marshmallow import fields, validate

from core import api
from core.api import Blueprint, QuerySchema, ResponseSchema
from core.authz import access, current_principal
from core.db import db
from core.jobs import business_date
from lending.servicing import portfolio

blp = Blueprint("portfolio", __name__, description="Portfolio at risk (PAR30)")


class PortfolioParArgs(QuerySchema):
    level = fields.String(load_default="village", validate=validate.OneOf(portfolio.LEVELS),
                          metadata={"description": "Group by village, station or county"})
    date = fields.Date(metadata={"description": "Business date of the snapshot (default: the "
                                                "newest on or before today)"})


class PortfolioBucketsSchema(ResponseSchema):
    current = fields.Integer(data_key="current")
    dpd_1_30 = fields.Integer(attribute="1-30", data_key="1-30")
    dpd_31_60 = fields.Integer(attribute="31-60", data_key="31-60")
    dpd_61_90 = fields.Integer(attribute="61-90", data_key="61-90")
    dpd_90_plus = fields.Integer(attribute="90+", data_key="90+")


class PortfolioFiguresSchema(ResponseSchema):
    loans = fields.Integer()
    outstanding_fen = fields.Integer()
    buckets = fields.Nested(PortfolioBucketsSchema)
    par30_fen = fields.Integer()
    par30_bp = fields.Integer()
    par30_ratio = fields.Float()


class PortfolioParRowSchema(PortfolioFiguresSchema):
    id = fields.UUID()
    code = fields.String(allow_none=True)
    name = fields.String()


class PortfolioParSchema(ResponseSchema):
    business_date = fields.Date(allow_none=True)
    level = fields.String()
    total = fields.Nested(PortfolioFiguresSchema)
    rows = fields.List(fields.Nested(PortfolioParRowSchema))


@blp.route("/portfolio/par", methods=["GET"])
@access("coordinator", "staff")
@blp.arguments(PortfolioParArgs, location="query")
@blp.response(200, PortfolioParSchema)
def get_par(args: dict[str, Any]) -> dict[str, Any]:
    """Portfolio at risk (PAR30) per village, station or county, from the daily snapshot."""
    on = args.get("date") or portfolio.latest_date(db.session, business_date())
    if on is None:
        empty = portfolio.par(db.session, current_principal(), args["level"], business_date())
        return {**empty, "business_date": None}
    return portfolio.par(db.session, current_principal(), args["level"], on)


def init_app(app: Flask) -> None:
    api.register(app, blp)

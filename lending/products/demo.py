"""Demo loan products (names in Chinese, as the farmers read them), created through the same
service as the admin API, so they are validated and audited like any other."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from core.db import DbSession
from core.places.models import County
from lending.products import services
from lending.products.models import LoanProduct

YUAN = 100  # fen

DEMO_PRODUCTS: tuple[dict[str, Any], ...] = (
    {"code": "spring-planting", "name": "春耕贷",
     "description": "用于春耕备耕的种子、化肥、农药和农机作业。收获卖粮后一次还本付息。",
     "repayment_type": "bullet_at_harvest",
     "min_amount_fen": 1_000 * YUAN, "max_amount_fen": 300_000 * YUAN,
     "min_term_months": 3, "max_term_months": 12, "annual_rate_bp": 435,
     "crops": ["rice", "wheat", "corn", "soybean"], "auto_ceiling_fen": 50_000 * YUAN},
    {"code": "household-revolving", "name": "农户随借随还贷",
     "description": "三年有效的循环额度。生产生活随用随借、随时归还。按实际用款天数计息。",
     "repayment_type": "revolving_line",
     "min_amount_fen": 1_000 * YUAN, "max_amount_fen": 200_000 * YUAN,
     "min_term_months": 1, "max_term_months": 36, "annual_rate_bp": 480,
     "crops": [], "auto_ceiling_fen": 30_000 * YUAN},
    {"code": "steady-income-instalment", "name": "农户分期贷",
     "description": "适合养殖、务工等收入稳定的家庭。每月等额还本付息。",
     "repayment_type": "equal_instalments",
     "min_amount_fen": 1_000 * YUAN, "max_amount_fen": 100_000 * YUAN,
     "min_term_months": 6, "max_term_months": 36, "annual_rate_bp": 520,
     "crops": [], "auto_ceiling_fen": 20_000 * YUAN},
    {"code": "monthly-interest-maturity", "name": "按月付息贷",
     "description": "每月只付利息、到期一次归还本金。适合种养大户周转资金。卖货后集中还本。",
     "repayment_type": "interest_monthly_principal_at_maturity",
     "min_amount_fen": 1_000 * YUAN, "max_amount_fen": 200_000 * YUAN,
     "min_term_months": 3, "max_term_months": 24, "annual_rate_bp": 480,
     "crops": [], "auto_ceiling_fen": 30_000 * YUAN},
)


def seed_demo(session: DbSession, county_codes: list[str]) -> list[LoanProduct]:
    """The demo products, serving ``county_codes`` (registered counties). A product whose code
    already exists is left as it is and returned, so seeding twice changes nothing."""
    products = []
    for terms in DEMO_PRODUCTS:
        existing = session.scalars(
            sa.select(LoanProduct).where(LoanProduct.code == terms["code"])).first()
        products.append(existing or services.create_product(
            session, **terms, county_codes=list(county_codes)))
    return products


def seeder(session: DbSession) -> str | None:
    """The embedded demo's seeder (``core.demo.register_seeder``): the demo products, serving
    every registered county; nothing when there is no county yet."""
    counties = list(session.scalars(sa.select(County.code).order_by(County.code)))
    if not counties:
        return None
    codes = [terms["code"] for terms in DEMO_PRODUCTS]
    present = set(session.scalars(sa.select(LoanProduct.code).where(LoanProduct.code.in_(codes))))
    created = [product.name for product in seed_demo(session, counties)
               if product.code not in present]
    if not created:
        return "demo data: loan products already present, left as is"
    return f"demo data: loan products {'、'.join(created)}"

"""Loan products.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 16:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('loan_products',
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=False),
    sa.Column('repayment_type', sa.String(length=40), nullable=False),
    sa.Column('min_amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('max_amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('min_term_months', sa.Integer(), nullable=False),
    sa.Column('max_term_months', sa.Integer(), nullable=False),
    sa.Column('annual_rate_bp', sa.Integer(), nullable=False),
    sa.Column('grace_months', sa.Integer(), nullable=False),
    sa.Column('day_count', sa.String(length=10), nullable=False),
    sa.Column('crops', sa.JSON(), nullable=False),
    sa.Column('county_codes', sa.JSON(), nullable=False),
    sa.Column('auto_ceiling_fen', sa.BigInteger(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('public_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loan_products')),
    sa.UniqueConstraint('code', name=op.f('uq_loan_products_code')),
    sa.UniqueConstraint('public_id', name=op.f('uq_loan_products_public_id'))
    )


def downgrade():
    op.drop_table('loan_products')

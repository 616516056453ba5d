"""Credit policy versions and crop reference data.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 16:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('credit_policies',
    sa.Column('version', sa.String(length=40), nullable=False),
    sa.Column('description', sa.String(length=300), nullable=False),
    sa.Column('decision_model', sa.JSON(), nullable=False),
    sa.Column('effective_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=60), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('public_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_policies')),
    sa.UniqueConstraint('public_id', name=op.f('uq_credit_policies_public_id')),
    sa.UniqueConstraint('version', name=op.f('uq_credit_policies_version'))
    )
    op.create_table('crop_references',
    sa.Column('policy_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('crop', sa.String(length=30), nullable=False),
    sa.Column('county_code', sa.String(length=6), nullable=False),
    sa.Column('yield_kg_per_mu', sa.Integer(), nullable=False),
    sa.Column('price_fen_per_kg', sa.Integer(), nullable=False),
    sa.Column('insured_sum_fen_per_mu', sa.BigInteger(), nullable=False),
    sa.Column('planting_from', sa.String(length=5), nullable=False),
    sa.Column('planting_to', sa.String(length=5), nullable=False),
    sa.Column('harvest_from', sa.String(length=5), nullable=False),
    sa.Column('harvest_to', sa.String(length=5), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('public_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['policy_id'], ['credit_policies.id'], name=op.f('fk_crop_references_policy_id_credit_policies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crop_references')),
    sa.UniqueConstraint('policy_id', 'crop', 'county_code', name=op.f('uq_crop_references_policy_id_crop_county_code')),
    sa.UniqueConstraint('public_id', name=op.f('uq_crop_references_public_id'))
    )


def downgrade():
    op.drop_table('crop_references')
    op.drop_table('credit_policies')

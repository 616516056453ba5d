"""The bank's copy of registry parcels, for devices and plausibility checks.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 19:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    t = 'land_parcels'
    op.create_table(
        t,
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('farmer_id', ID, nullable=False),
        sa.Column('village_id', ID, nullable=False),
        sa.Column('certificate_number', sa.String(length=40), nullable=False),
        sa.Column('parcel_code', sa.String(length=40), nullable=False),
        sa.Column('area_mu', sa.Numeric(precision=10, scale=2), nullable=False),
        sa.Column('land_class', sa.String(length=30), nullable=False),
        sa.Column('lat_e7', sa.Integer(), nullable=False),
        sa.Column('lon_e7', sa.Integer(), nullable=False),
        sa.Column('contract_end', sa.Date(), nullable=False),
        sa.Column('pledged', sa.Boolean(), nullable=False),
        sa.Column('source', sa.String(length=10), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_land_parcels')),
        sa.UniqueConstraint('parcel_code', name=op.f('uq_land_parcels_parcel_code')),
        sa.ForeignKeyConstraint(['farmer_id'], ['farmers.id'],
                                name=op.f('fk_land_parcels_farmer_id_farmers')),
        sa.ForeignKeyConstraint(['village_id'], ['villages.id'],
                                name=op.f('fk_land_parcels_village_id_villages')),
    )
    with op.batch_alter_table(t, schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_land_parcels_farmer_id'), ['farmer_id'])


def downgrade():
    with op.batch_alter_table('land_parcels', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_land_parcels_farmer_id'))
    op.drop_table('land_parcels')

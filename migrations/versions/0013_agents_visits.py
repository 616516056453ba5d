"""Coordinators' field records: visits and identity checks; plausibility flags on field checks.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29 19:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
EMPTY_LIST = sa.text("'[]'")


def upgrade():
    t = 'field_visits'
    op.create_table(
        t,
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('coordinator_id', ID, nullable=False),
        sa.Column('device_id', ID, nullable=False),
        sa.Column('farmer_id', ID, nullable=False),
        sa.Column('village_id', ID, nullable=False),
        sa.Column('assignment_id', ID, nullable=True),
        sa.Column('parcel_code', sa.String(length=40), nullable=True),
        sa.Column('lat_e7', sa.Integer(), nullable=True),
        sa.Column('lon_e7', sa.Integer(), nullable=True),
        sa.Column('accuracy_m', sa.Integer(), nullable=True),
        sa.Column('crop_seen', sa.String(length=30), nullable=True),
        sa.Column('estimated_area_mu', sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('photos', sa.JSON(), nullable=False),
        sa.Column('flags', sa.JSON(), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('public_id', sa.Uuid(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_field_visits')),
        sa.UniqueConstraint('public_id', name=op.f('uq_field_visits_public_id')),
        sa.ForeignKeyConstraint(['coordinator_id'], ['coordinators.id'],
                                name=op.f('fk_field_visits_coordinator_id_coordinators')),
        sa.ForeignKeyConstraint(['device_id'], ['devices.id'],
                                name=op.f('fk_field_visits_device_id_devices')),
        sa.ForeignKeyConstraint(['farmer_id'], ['farmers.id'],
                                name=op.f('fk_field_visits_farmer_id_farmers')),
        sa.ForeignKeyConstraint(['village_id'], ['villages.id'],
                                name=op.f('fk_field_visits_village_id_villages')),
        sa.ForeignKeyConstraint(['assignment_id'], ['field_assignments.id'],
                                name=op.f('fk_field_visits_assignment_id_field_assignments')),
    )
    with op.batch_alter_table(t, schema=None) as batch_op:
        batch_op.create_index('ix_field_visits_coordinator_recorded',
                              ['coordinator_id', 'recorded_at'])
        batch_op.create_index('ix_field_visits_village_public', ['village_id', 'public_id'])
        batch_op.create_index(batch_op.f('ix_field_visits_device_id'), ['device_id'])
        batch_op.create_index(batch_op.f('ix_field_visits_farmer_id'), ['farmer_id'])
        batch_op.create_index(batch_op.f('ix_field_visits_assignment_id'), ['assignment_id'])

    with op.batch_alter_table('field_checks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('flags', sa.JSON(), nullable=False,
                                      server_default=EMPTY_LIST))


def downgrade():
    with op.batch_alter_table('field_checks', schema=None) as batch_op:
        batch_op.drop_column('flags')
    op.drop_table('field_visits')

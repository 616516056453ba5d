"""Registry cache and imported registry extracts.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 16:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    op.create_table('registry_cache',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('registry_name', sa.String(length=20), nullable=False),
    sa.Column('request_key', sa.String(length=64), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registry_cache')),
    sa.UniqueConstraint('registry_name', 'request_key', name=op.f('uq_registry_cache_registry_name_request_key'))
    )
    with op.batch_alter_table('registry_cache', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_registry_cache_expires_at'), ['expires_at'], unique=False)

    op.create_table('registry_imports',
    sa.Column('registry_name', sa.String(length=20), nullable=False),
    sa.Column('file_name', sa.String(length=200), nullable=False),
    sa.Column('file_sha256', sa.String(length=64), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lines', sa.Integer(), nullable=False),
    sa.Column('accepted', sa.Integer(), nullable=False),
    sa.Column('rejected', sa.Integer(), nullable=False),
    sa.Column('inserted', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('public_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registry_imports')),
    sa.UniqueConstraint('public_id', name=op.f('uq_registry_imports_public_id'))
    )
    with op.batch_alter_table('registry_imports', schema=None) as batch_op:
        batch_op.create_index('ix_registry_imports_registry_name_finished_at', ['registry_name', 'finished_at'], unique=False)

    op.create_table('registry_certificates',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('number', sa.String(length=40), nullable=False),
    sa.Column('holder_hash', sa.String(length=64), nullable=False),
    sa.Column('holder_name', sa.String(length=100), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registry_certificates')),
    sa.UniqueConstraint('number', name=op.f('uq_registry_certificates_number'))
    )
    with op.batch_alter_table('registry_certificates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_registry_certificates_holder_hash'), ['holder_hash'], unique=False)

    op.create_table('registry_parcels',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('certificate_id', ID, nullable=False),
    sa.Column('area_cmu', sa.Integer(), nullable=False),
    sa.Column('land_class', sa.String(length=30), nullable=False),
    sa.Column('village_code', sa.String(length=12), nullable=False),
    sa.Column('latitude_e6', sa.Integer(), nullable=False),
    sa.Column('longitude_e6', sa.Integer(), nullable=False),
    sa.Column('contract_start', sa.Date(), nullable=False),
    sa.Column('contract_end', sa.Date(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['certificate_id'], ['registry_certificates.id'], name=op.f('fk_registry_parcels_certificate_id_registry_certificates')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registry_parcels')),
    sa.UniqueConstraint('code', name=op.f('uq_registry_parcels_code'))
    )
    with op.batch_alter_table('registry_parcels', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_registry_parcels_certificate_id'), ['certificate_id'], unique=False)

    op.create_table('registry_pledges',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('parcel_id', ID, nullable=False),
    sa.Column('creditor', sa.String(length=200), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('start', sa.Date(), nullable=False),
    sa.Column('end', sa.Date(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['parcel_id'], ['registry_parcels.id'], name=op.f('fk_registry_pledges_parcel_id_registry_parcels')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registry_pledges')),
    sa.UniqueConstraint('parcel_id', 'creditor', 'start', name=op.f('uq_registry_pledges_parcel_id_creditor_start'))
    )

    op.create_table('registry_policies',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('number', sa.String(length=40), nullable=False),
    sa.Column('holder_hash', sa.String(length=64), nullable=False),
    sa.Column('crop', sa.String(length=30), nullable=False),
    sa.Column('insured_area_cmu', sa.Integer(), nullable=False),
    sa.Column('sum_insured_fen', sa.BigInteger(), nullable=False),
    sa.Column('start', sa.Date(), nullable=False),
    sa.Column('end', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('parcel_codes', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registry_policies')),
    sa.UniqueConstraint('number', name=op.f('uq_registry_policies_number'))
    )
    with op.batch_alter_table('registry_policies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_registry_policies_holder_hash'), ['holder_hash'], unique=False)

    op.create_table('registry_claims',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('policy_id', ID, nullable=False),
    sa.Column('event', sa.String(length=30), nullable=False),
    sa.Column('event_date', sa.Date(), nullable=False),
    sa.Column('loss_ratio_bp', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['policy_id'], ['registry_policies.id'], name=op.f('fk_registry_claims_policy_id_registry_policies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registry_claims')),
    sa.UniqueConstraint('policy_id', 'event', 'event_date', name=op.f('uq_registry_claims_policy_id_event_event_date'))
    )


def downgrade():
    op.drop_table('registry_claims')
    with op.batch_alter_table('registry_policies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_registry_policies_holder_hash'))
    op.drop_table('registry_policies')
    op.drop_table('registry_pledges')
    with op.batch_alter_table('registry_parcels', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_registry_parcels_certificate_id'))
    op.drop_table('registry_parcels')
    with op.batch_alter_table('registry_certificates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_registry_certificates_holder_hash'))
    op.drop_table('registry_certificates')
    with op.batch_alter_table('registry_imports', schema=None) as batch_op:
        batch_op.drop_index('ix_registry_imports_registry_name_finished_at')
    op.drop_table('registry_imports')
    with op.batch_alter_table('registry_cache', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_registry_cache_expires_at'))
    op.drop_table('registry_cache')

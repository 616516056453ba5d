"""Sync attachments: resumable (tus) uploads of photos, content-addressed.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 19:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    t = 'sync_uploads'
    op.create_table(
        t,
        sa.Column('coordinator_id', ID, nullable=False),
        sa.Column('device_id', ID, nullable=True),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('upload_length', sa.BigInteger(), nullable=False),
        sa.Column('upload_offset', sa.BigInteger(), nullable=False),
        sa.Column('metadata_header', sa.Text(), nullable=False),
        sa.Column('filename', sa.String(length=255), nullable=True),
        sa.Column('content_type', sa.String(length=100), nullable=False),
        sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('public_id', sa.Uuid(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('upload_offset >= 0 AND upload_offset <= upload_length',
                           name=op.f('ck_sync_uploads_offset_in_range')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_uploads')),
        sa.UniqueConstraint('public_id', name=op.f('uq_sync_uploads_public_id')),
        sa.ForeignKeyConstraint(['coordinator_id'], ['coordinators.id'],
                                name=op.f('fk_sync_uploads_coordinator_id_coordinators')),
        sa.ForeignKeyConstraint(['device_id'], ['devices.id'],
                                name=op.f('fk_sync_uploads_device_id_devices')),
    )
    with op.batch_alter_table(t, schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sync_uploads_coordinator_id'), ['coordinator_id'])
        batch_op.create_index(batch_op.f('ix_sync_uploads_device_id'), ['device_id'])
        batch_op.create_index(batch_op.f('ix_sync_uploads_sha256'), ['sha256'])

    op.create_table(
        'sync_stored_files',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('content_type', sa.String(length=100), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_stored_files')),
        sa.UniqueConstraint('sha256', name=op.f('uq_sync_stored_files_sha256')),
    )


def downgrade():
    op.drop_table('sync_stored_files')
    op.drop_table('sync_uploads')

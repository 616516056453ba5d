"""Sync push: per-device sync state, the operation log, editable-record versions and conflicts.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 19:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _base(table):
    """The columns and keys every model has (id, public_id, created_at)."""
    return [
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('public_id', sa.Uuid(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{table}')),
        sa.UniqueConstraint('public_id', name=op.f(f'uq_{table}_public_id')),
    ]


def _device_fk(table):
    return sa.ForeignKeyConstraint(['device_id'], ['devices.id'],
                                   name=op.f(f'fk_{table}_device_id_devices'))


def upgrade():
    t = 'sync_devices'
    op.create_table(
        t,
        sa.Column('device_id', ID, nullable=False),
        sa.Column('acked_seq', sa.BigInteger(), nullable=False),
        sa.Column('final_ahead', sa.JSON(), nullable=False),
        sa.Column('last_push_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_pull_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('cursor', sa.Text(), nullable=True),
        sa.Column('pending_reported', sa.BigInteger(), nullable=True),
        sa.Column('flags', sa.JSON(), nullable=False),
        *_base(t),
        _device_fk(t),
        sa.UniqueConstraint('device_id', name=op.f('uq_sync_devices_device_id')),
    )

    t = 'sync_ops'
    op.create_table(
        t,
        sa.Column('device_id', ID, nullable=False),
        sa.Column('op_id', sa.Uuid(), nullable=False),
        sa.Column('device_seq', sa.BigInteger(), nullable=False),
        sa.Column('type', sa.String(length=60), nullable=False),
        sa.Column('entity_id', sa.Uuid(), nullable=False),
        sa.Column('payload_key', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('reason', sa.String(length=40), nullable=True),
        sa.Column('detail', sa.Text(), nullable=True),
        sa.Column('result', sa.JSON(), nullable=True),
        sa.Column('flags', sa.JSON(), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        *_base(t),
        _device_fk(t),
        sa.UniqueConstraint('device_id', 'op_id', name='uq_sync_ops_device_id_op_id'),
        sa.CheckConstraint("status IN ('applied', 'conflict', 'rejected')",
                           name=op.f('ck_sync_ops_status')),
    )
    with op.batch_alter_table(t, schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sync_ops_entity_id'), ['entity_id'])

    t = 'record_versions'
    op.create_table(
        t,
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('entity_id', sa.Uuid(), nullable=False),
        sa.Column('version', sa.BigInteger(), nullable=False),
        sa.Column('field_versions', sa.JSON(), nullable=False),
        *_base(t),
        sa.UniqueConstraint('kind', 'entity_id', name='uq_record_versions_kind_entity_id'),
    )

    t = 'sync_conflicts'
    op.create_table(
        t,
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('entity_id', sa.Uuid(), nullable=False),
        sa.Column('field', sa.String(length=60), nullable=False),
        sa.Column('server_value', sa.JSON(), nullable=True),
        sa.Column('device_value', sa.JSON(), nullable=True),
        sa.Column('device_id', ID, nullable=False),
        sa.Column('op_id', sa.Uuid(), nullable=False),
        sa.Column('base_version', sa.BigInteger(), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('resolution', sa.String(length=12), nullable=True),
        sa.Column('reason', sa.String(length=500), nullable=True),
        sa.Column('resolved_by', sa.String(length=60), nullable=True),
        sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
        *_base(t),
        _device_fk(t),
        sa.CheckConstraint("status IN ('open', 'resolved')", name=op.f('ck_sync_conflicts_status')),
        sa.CheckConstraint("resolution IS NULL OR resolution IN ('keep_server', 'take_device')",
                           name=op.f('ck_sync_conflicts_resolution')),
    )
    with op.batch_alter_table(t, schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sync_conflicts_entity_id'), ['entity_id'])
        batch_op.create_index(batch_op.f('ix_sync_conflicts_device_id'), ['device_id'])
        batch_op.create_index('ix_sync_conflicts_status', ['status'])


def downgrade():
    op.drop_table('sync_conflicts')
    op.drop_table('record_versions')
    op.drop_table('sync_ops')
    op.drop_table('sync_devices')

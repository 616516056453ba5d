"""Sync pull: the change log the devices' cursors read, and the retention horizon.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 19:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _xact_id_default():
    """The writing transaction's id on PostgreSQL (see sync.feed.changes); 0 on SQLite."""
    if op.get_bind().dialect.name == 'postgresql':
        return sa.text('(pg_current_xact_id()::text::bigint)')
    return sa.text('0')


def upgrade():
    t = 'sync_changes'
    op.create_table(
        t,
        sa.Column('seq', ID, autoincrement=True, nullable=False),
        sa.Column('txid', sa.BigInteger(), server_default=_xact_id_default(), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('entity_id', sa.Uuid(), nullable=False),
        sa.Column('village_id', ID, nullable=False),
        sa.Column('op', sa.String(length=6), nullable=False),
        sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("op IN ('upsert', 'delete')", name=op.f('ck_sync_changes_op')),
        sa.PrimaryKeyConstraint('seq', name=op.f('pk_sync_changes')),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table(t, schema=None) as batch_op:
        batch_op.create_index('ix_sync_changes_position', ['txid', 'seq'])
        batch_op.create_index(batch_op.f('ix_sync_changes_entity_id'), ['entity_id'])

    op.create_table(
        'sync_feed_horizon',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('txid', sa.BigInteger(), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_feed_horizon')),
    )


def downgrade():
    op.drop_table('sync_feed_horizon')
    op.drop_table('sync_changes')

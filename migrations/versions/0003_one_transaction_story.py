"""One transaction story: idempotency answers stored in the request's transaction; jobs that
remember their business date and chunks.

The idempotency claim (state, claim token, lock) is gone: a record now exists only once its
request committed, so unfinished claims are deleted and every column of the answer is required.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 14:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.execute("DELETE FROM idempotency_records WHERE state <> 'completed'")
    with op.batch_alter_table('idempotency_records', schema=None) as batch_op:
        batch_op.drop_column('state')
        batch_op.drop_column('claim_token')
        batch_op.drop_column('locked_until')
        batch_op.alter_column('response_status', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('response_body', existing_type=sa.Text(), nullable=False)
        batch_op.alter_column('response_headers', existing_type=sa.JSON(), nullable=False)

    with op.batch_alter_table('job_leases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_business_date', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('last_chunks', sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table('job_leases', schema=None) as batch_op:
        batch_op.drop_column('last_chunks')
        batch_op.drop_column('last_business_date')

    with op.batch_alter_table('idempotency_records', schema=None) as batch_op:
        batch_op.alter_column('response_headers', existing_type=sa.JSON(), nullable=True)
        batch_op.alter_column('response_body', existing_type=sa.Text(), nullable=True)
        batch_op.alter_column('response_status', existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('claim_token', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('state', sa.String(length=12), nullable=False,
                                      server_default='completed'))

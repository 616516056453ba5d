"""The revolving household line: reviews and draws.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-29 22:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    t = 'line_reviews'
    op.create_table(
        t,
        sa.Column('loan_id', ID, nullable=False),
        sa.Column('action', sa.String(length=10), nullable=False),
        sa.Column('staff_id', ID, nullable=True),
        sa.Column('actor', sa.String(length=80), nullable=False),
        sa.Column('business_date', sa.Date(), nullable=False),
        sa.Column('old_limit_fen', sa.BigInteger(), nullable=False),
        sa.Column('new_limit_fen', sa.BigInteger(), nullable=False),
        sa.Column('was_frozen', sa.Boolean(), nullable=False),
        sa.Column('frozen', sa.Boolean(), nullable=False),
        sa.Column('old_review_on', sa.Date(), nullable=True),
        sa.Column('new_review_on', sa.Date(), nullable=True),
        sa.Column('reason', sa.String(length=500), nullable=False),
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('public_id', sa.Uuid(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_line_reviews')),
        sa.UniqueConstraint('public_id', name=op.f('uq_line_reviews_public_id')),
        sa.ForeignKeyConstraint(['loan_id'], ['loans.id'],
                                name=op.f('fk_line_reviews_loan_id_loans')),
        sa.ForeignKeyConstraint(['staff_id'], ['staff.id'],
                                name=op.f('fk_line_reviews_staff_id_staff')),
    )
    with op.batch_alter_table(t, schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_line_reviews_loan_id'), ['loan_id'])


def downgrade():
    op.drop_table('line_reviews')

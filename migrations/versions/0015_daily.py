"""The daily job: reminders sent, portfolio snapshots; post-loan visits beside field checks.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29 22:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
OPEN = sa.text("status = 'open'")
# post-loan visits of several kinds may be open beside a field check: the one-open rule is
# for field checks only
OPEN_FIELD_CHECK = sa.text("status = 'open' AND kind = 'field_check'")


def upgrade():
    t = 'loan_reminders'
    op.create_table(
        t,
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('installment_id', ID, nullable=False),
        sa.Column('loan_id', ID, nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('offset_days', sa.Integer(), nullable=False),
        sa.Column('business_date', sa.Date(), nullable=False),
        sa.Column('queued', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_loan_reminders')),
        sa.ForeignKeyConstraint(['installment_id'], ['loan_installments.id'],
                                name=op.f('fk_loan_reminders_installment_id_loan_installments')),
        sa.ForeignKeyConstraint(['loan_id'], ['loans.id'],
                                name=op.f('fk_loan_reminders_loan_id_loans')),
        sa.UniqueConstraint('installment_id', 'kind', 'offset_days',
                            name=op.f('uq_loan_reminders_installment_id_kind_offset_days')),
    )
    with op.batch_alter_table(t, schema=None) as batch_op:
        batch_op.create_index('ix_loan_reminders_pending', ['queued', 'loan_id'])

    t = 'portfolio_snapshots'
    op.create_table(
        t,
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('business_date', sa.Date(), nullable=False),
        sa.Column('village_id', ID, nullable=False),
        sa.Column('loans', sa.Integer(), nullable=False),
        sa.Column('outstanding_fen', sa.BigInteger(), nullable=False),
        sa.Column('current_fen', sa.BigInteger(), nullable=False),
        sa.Column('dpd_1_30_fen', sa.BigInteger(), nullable=False),
        sa.Column('dpd_31_60_fen', sa.BigInteger(), nullable=False),
        sa.Column('dpd_61_90_fen', sa.BigInteger(), nullable=False),
        sa.Column('dpd_90_plus_fen', sa.BigInteger(), nullable=False),
        sa.Column('par30_fen', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_portfolio_snapshots')),
        sa.ForeignKeyConstraint(['village_id'], ['villages.id'],
                                name=op.f('fk_portfolio_snapshots_village_id_villages')),
        sa.UniqueConstraint('business_date', 'village_id',
                            name=op.f('uq_portfolio_snapshots_business_date_village_id')),
    )
    with op.batch_alter_table(t, schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portfolio_snapshots_village_id'), ['village_id'])

    with op.batch_alter_table('loan_installments', schema=None) as batch_op:
        batch_op.create_index('ix_loan_installments_loan_unpaid',
                              ['loan_id', 'paid_on', 'due_date'])
    with op.batch_alter_table('field_assignments', schema=None) as batch_op:
        batch_op.drop_index('uq_field_assignments_open_application')
        batch_op.create_index('uq_field_assignments_open_application', ['application_id'],
                              unique=True, postgresql_where=OPEN_FIELD_CHECK,
                              sqlite_where=OPEN_FIELD_CHECK)


def downgrade():
    with op.batch_alter_table('field_assignments', schema=None) as batch_op:
        batch_op.drop_index('uq_field_assignments_open_application')
        batch_op.create_index('uq_field_assignments_open_application', ['application_id'],
                              unique=True, postgresql_where=OPEN, sqlite_where=OPEN)
    with op.batch_alter_table('loan_installments', schema=None) as batch_op:
        batch_op.drop_index('ix_loan_installments_loan_unpaid')
    op.drop_table('portfolio_snapshots')
    op.drop_table('loan_reminders')

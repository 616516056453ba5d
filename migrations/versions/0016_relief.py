"""Insurance-triggered relief and reschedules.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29 22:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
TS = sa.DateTime(timezone=True)


def _base(t):
    return [
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('public_id', sa.Uuid(), nullable=False),
        sa.Column('created_at', TS, nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{t}')),
        sa.UniqueConstraint('public_id', name=op.f(f'uq_{t}_public_id')),
    ]


def upgrade():
    t = 'relief_cases'
    op.create_table(
        t,
        sa.Column('loan_id', ID, nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('claim_reference', sa.String(length=120), nullable=True),
        sa.Column('claim', sa.JSON(), nullable=True),
        sa.Column('opened_on', sa.Date(), nullable=False),
        sa.Column('opened_by', sa.String(length=80), nullable=False),
        sa.Column('reason', sa.String(length=500), nullable=False),
        sa.Column('proposed_maturity_date', sa.Date(), nullable=True),
        sa.Column('waive_penalties', sa.Boolean(), nullable=False),
        sa.Column('penalty_at_opening_fen', sa.BigInteger(), nullable=False),
        sa.Column('paused_loan', sa.Boolean(), nullable=False),
        sa.Column('recommended_by_id', ID, nullable=True),
        sa.Column('recommended_at', TS, nullable=True),
        sa.Column('recommendation_reason', sa.String(length=500), nullable=False),
        sa.Column('decided_by_id', ID, nullable=True),
        sa.Column('decided_at', TS, nullable=True),
        sa.Column('decided_on', sa.Date(), nullable=True),
        sa.Column('decision_reason', sa.String(length=500), nullable=False),
        sa.Column('waived_fen', sa.BigInteger(), nullable=False),
        sa.Column('journal_id', ID, nullable=True),
        *_base(t),
        sa.UniqueConstraint('loan_id', 'claim_reference',
                            name=op.f('uq_relief_cases_loan_id_claim_reference')),
        sa.ForeignKeyConstraint(['loan_id'], ['loans.id'],
                                name=op.f('fk_relief_cases_loan_id_loans')),
        sa.ForeignKeyConstraint(['recommended_by_id'], ['staff.id'],
                                name=op.f('fk_relief_cases_recommended_by_id_staff')),
        sa.ForeignKeyConstraint(['decided_by_id'], ['staff.id'],
                                name=op.f('fk_relief_cases_decided_by_id_staff')),
        sa.ForeignKeyConstraint(['journal_id'], ['journal_transactions.id'],
                                name=op.f('fk_relief_cases_journal_id_journal_transactions')),
    )
    with op.batch_alter_table(t, schema=None) as batch_op:
        batch_op.create_index('ix_relief_cases_status', ['status'])
        batch_op.create_index(batch_op.f('ix_relief_cases_loan_id'), ['loan_id'])

    t = 'loan_reschedules'
    op.create_table(
        t,
        sa.Column('loan_id', ID, nullable=False),
        sa.Column('case_id', ID, nullable=False),
        sa.Column('business_date', sa.Date(), nullable=False),
        sa.Column('old_maturity_date', sa.Date(), nullable=True),
        sa.Column('new_maturity_date', sa.Date(), nullable=False),
        sa.Column('principal_fen', sa.BigInteger(), nullable=False),
        sa.Column('old_schedule', sa.JSON(), nullable=False),
        sa.Column('new_schedule', sa.JSON(), nullable=False),
        sa.Column('approved_by_id', ID, nullable=False),
        sa.Column('approved_at', TS, nullable=False),
        *_base(t),
        sa.UniqueConstraint('case_id', name=op.f('uq_loan_reschedules_case_id')),
        sa.ForeignKeyConstraint(['loan_id'], ['loans.id'],
                                name=op.f('fk_loan_reschedules_loan_id_loans')),
        sa.ForeignKeyConstraint(['case_id'], ['relief_cases.id'],
                                name=op.f('fk_loan_reschedules_case_id_relief_cases')),
        sa.ForeignKeyConstraint(['approved_by_id'], ['staff.id'],
                                name=op.f('fk_loan_reschedules_approved_by_id_staff')),
    )
    with op.batch_alter_table(t, schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_loan_reschedules_loan_id'), ['loan_id'])


def downgrade():
    with op.batch_alter_table('loan_reschedules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_loan_reschedules_loan_id'))
    op.drop_table('loan_reschedules')
    with op.batch_alter_table('relief_cases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_relief_cases_loan_id'))
        batch_op.drop_index('ix_relief_cases_status')
    op.drop_table('relief_cases')

"""Loan applications, decisions, field checks and reviews; farmers' identity status and language.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 16:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _base(name):
    return [
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('public_id', sa.Uuid(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{name}')),
        sa.UniqueConstraint('public_id', name=op.f(f'uq_{name}_public_id')),
    ]


def _fk(table, column, target):
    return sa.ForeignKeyConstraint([column], [f'{target}.id'],
                                   name=op.f(f'fk_{table}_{column}_{target}'))


def upgrade():
    with op.batch_alter_table('farmers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('identity_status', sa.String(length=10),
                                      server_default='verified', nullable=False))
        batch_op.add_column(sa.Column('language', sa.String(length=10),
                                      server_default='zh_CN', nullable=False))

    t = 'loan_applications'
    op.create_table(
        t,
        sa.Column('farmer_id', ID, nullable=False),
        sa.Column('village_id', ID, nullable=False),
        sa.Column('product_id', ID, nullable=False),
        sa.Column('policy_id', ID, nullable=True),
        sa.Column('state', sa.String(length=30), nullable=False),
        sa.Column('state_changed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('amount_fen', sa.BigInteger(), nullable=False),
        sa.Column('term_months', sa.Integer(), nullable=False),
        sa.Column('purpose', sa.String(length=200), nullable=False),
        sa.Column('crop', sa.String(length=30), nullable=False),
        sa.Column('terms', sa.JSON(), nullable=False),
        sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('approved_amount_fen', sa.BigInteger(), nullable=True),
        sa.Column('retry_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('info_requested', sa.Boolean(), nullable=False),
        sa.Column('recommended_by_id', ID, nullable=True),
        sa.Column('recommendation', sa.String(length=20), nullable=True),
        *_base(t),
        _fk(t, 'farmer_id', 'farmers'), _fk(t, 'village_id', 'villages'),
        _fk(t, 'product_id', 'loan_products'), _fk(t, 'policy_id', 'credit_policies'),
        _fk(t, 'recommended_by_id', 'staff'),
    )
    with op.batch_alter_table(t, schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_loan_applications_farmer_id'), ['farmer_id'])
        batch_op.create_index(batch_op.f('ix_loan_applications_village_id'), ['village_id'])
        batch_op.create_index('ix_loan_applications_queue', ['state', 'state_changed_at'])
        batch_op.create_index('ix_loan_applications_retry', ['retry_at'])

    t = 'loan_application_parcels'
    op.create_table(
        t,
        sa.Column('application_id', ID, nullable=False),
        sa.Column('certificate_number', sa.String(length=40), nullable=False),
        sa.Column('parcel_code', sa.String(length=40), nullable=False),
        sa.Column('declared_area_mu', sa.Numeric(precision=10, scale=2), nullable=False),
        *_base(t),
        _fk(t, 'application_id', 'loan_applications'),
        sa.UniqueConstraint('application_id', 'parcel_code',
                            name=op.f('uq_loan_application_parcels_application_id_parcel_code')),
    )
    with op.batch_alter_table(t, schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_loan_application_parcels_application_id'),
                              ['application_id'])
        batch_op.create_index(batch_op.f('ix_loan_application_parcels_parcel_code'),
                              ['parcel_code'])

    t = 'loan_decisions'
    op.create_table(
        t,
        sa.Column('application_id', ID, nullable=False),
        sa.Column('policy_id', ID, nullable=False),
        sa.Column('policy_version', sa.String(length=40), nullable=False),
        sa.Column('outcome', sa.String(length=20), nullable=False),
        sa.Column('limit_fen', sa.BigInteger(), nullable=False),
        sa.Column('amount_fen', sa.BigInteger(), nullable=False),
        sa.Column('score', sa.Integer(), nullable=False),
        sa.Column('factors', sa.JSON(), nullable=False),
        sa.Column('reasons', sa.JSON(), nullable=False),
        sa.Column('snapshot', sa.JSON(), nullable=False),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
        *_base(t),
        _fk(t, 'application_id', 'loan_applications'), _fk(t, 'policy_id', 'credit_policies'),
    )
    with op.batch_alter_table(t, schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_loan_decisions_application_id'), ['application_id'])
        batch_op.create_index(batch_op.f('ix_loan_decisions_policy_id'), ['policy_id'])

    t = 'field_assignments'
    op.create_table(
        t,
        sa.Column('application_id', ID, nullable=False),
        sa.Column('village_id', ID, nullable=False),
        sa.Column('kind', sa.String(length=30), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('completed_by_id', ID, nullable=True),
        *_base(t),
        _fk(t, 'application_id', 'loan_applications'), _fk(t, 'village_id', 'villages'),
        _fk(t, 'completed_by_id', 'coordinators'),
    )
    with op.batch_alter_table(t, schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_field_assignments_application_id'),
                              ['application_id'])
        batch_op.create_index('ix_field_assignments_open', ['village_id', 'status'])

    t = 'field_checks'
    op.create_table(
        t,
        sa.Column('client_id', sa.Uuid(), nullable=False),
        sa.Column('application_id', ID, nullable=False),
        sa.Column('assignment_id', ID, nullable=True),
        sa.Column('coordinator_id', ID, nullable=False),
        sa.Column('identity_verified', sa.Boolean(), nullable=False),
        sa.Column('parcels', sa.JSON(), nullable=False),
        sa.Column('notes', sa.String(length=1000), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        *_base(t),
        _fk(t, 'application_id', 'loan_applications'),
        _fk(t, 'assignment_id', 'field_assignments'),
        _fk(t, 'coordinator_id', 'coordinators'),
        sa.UniqueConstraint('client_id', name=op.f('uq_field_checks_client_id')),
    )
    with op.batch_alter_table(t, schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_field_checks_application_id'), ['application_id'])
        batch_op.create_index(batch_op.f('ix_field_checks_coordinator_id'), ['coordinator_id'])

    t = 'review_actions'
    op.create_table(
        t,
        sa.Column('application_id', ID, nullable=False),
        sa.Column('staff_id', ID, nullable=False),
        sa.Column('action', sa.String(length=20), nullable=False),
        sa.Column('reason', sa.String(length=500), nullable=False),
        sa.Column('amount_fen', sa.BigInteger(), nullable=True),
        *_base(t),
        _fk(t, 'application_id', 'loan_applications'), _fk(t, 'staff_id', 'staff'),
    )
    with op.batch_alter_table(t, schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_review_actions_application_id'), ['application_id'])
        batch_op.create_index(batch_op.f('ix_review_actions_staff_id'), ['staff_id'])


def downgrade():
    for t in ('review_actions', 'field_checks', 'field_assignments', 'loan_decisions',
              'loan_application_parcels', 'loan_applications'):
        op.drop_table(t)
    with op.batch_alter_table('farmers', schema=None) as batch_op:
        batch_op.drop_column('language')
        batch_op.drop_column('identity_status')

"""Staff review: farmers' answers to staff questions; one open field assignment per application.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 18:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
OPEN = sa.text("status = 'open'")


def upgrade():
    t = 'information_answers'
    op.create_table(
        t,
        sa.Column('application_id', ID, nullable=False),
        sa.Column('request_id', ID, nullable=False),
        sa.Column('farmer_id', ID, nullable=False),
        sa.Column('answer', sa.String(length=2000), nullable=False),
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('public_id', sa.Uuid(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_information_answers')),
        sa.UniqueConstraint('public_id', name=op.f('uq_information_answers_public_id')),
        sa.UniqueConstraint('request_id', name=op.f('uq_information_answers_request_id')),
        sa.ForeignKeyConstraint(['application_id'], ['loan_applications.id'],
                                name=op.f('fk_information_answers_application_id_loan_applications')),
        sa.ForeignKeyConstraint(['request_id'], ['review_actions.id'],
                                name=op.f('fk_information_answers_request_id_review_actions')),
        sa.ForeignKeyConstraint(['farmer_id'], ['farmers.id'],
                                name=op.f('fk_information_answers_farmer_id_farmers')),
    )
    with op.batch_alter_table(t, schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_information_answers_application_id'),
                              ['application_id'])

    with op.batch_alter_table('field_assignments', schema=None) as batch_op:
        batch_op.create_index('uq_field_assignments_open_application', ['application_id'],
                              unique=True, postgresql_where=OPEN, sqlite_where=OPEN)


def downgrade():
    with op.batch_alter_table('field_assignments', schema=None) as batch_op:
        batch_op.drop_index('uq_field_assignments_open_application')
    op.drop_table('information_answers')

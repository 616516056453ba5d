"""Authentication, second pass: a one-time-code challenge records why it was closed.

``closed_reason`` is ``used`` (a farmer signed in with it) or ``replaced`` (a newer code was
requested for the same phone), so that typing the code of an earlier SMS can answer
``otp-replaced`` instead of a bare "wrong code". Challenges closed before this revision keep
a NULL reason.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 13:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('otp_challenges', schema=None) as batch_op:
        batch_op.add_column(sa.Column('closed_reason', sa.String(length=12), nullable=True))
        batch_op.create_check_constraint(
            op.f('ck_otp_challenges_closed_reason'),
            "closed_reason IS NULL OR closed_reason IN ('used', 'replaced')")


def downgrade():
    with op.batch_alter_table('otp_challenges', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_otp_challenges_closed_reason'), type_='check')
        batch_op.drop_column('closed_reason')

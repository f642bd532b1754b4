"""Scheduling and fault handling: poll intervals, pausing, cheap polls, UIDVALIDITY breaker

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("mail_accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("poll_interval_seconds", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("paused", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("paused_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("auth_failures", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("folder_states", schema=None) as batch_op:
        batch_op.add_column(sa.Column("caught_up_uidnext", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("uidvalidity_changes", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("uidvalidity_changed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table("folder_states", schema=None) as batch_op:
        batch_op.drop_column("uidvalidity_changed_at")
        batch_op.drop_column("uidvalidity_changes")
        batch_op.drop_column("caught_up_uidnext")
    with op.batch_alter_table("mail_accounts", schema=None) as batch_op:
        batch_op.drop_column("auth_failures")
        batch_op.drop_column("paused_reason")
        batch_op.drop_column("paused")
        batch_op.drop_column("poll_interval_seconds")

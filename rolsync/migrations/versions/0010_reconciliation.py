"""Reconciliation and stall alarms: what the server held at each poll, and when a mailbox last worked

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("folder_states") as batch:
        batch.add_column(sa.Column("server_messages", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("polled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("uidnext_pending_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("reconciliation", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("reconciled_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("mail_accounts") as batch:
        batch.add_column(sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_error_code", sa.String(length=64), nullable=True))
    # Mailboxes that worked before this version are not stalled: their last good run is in the history.
    op.execute(
        "UPDATE mail_accounts SET last_success_at = (SELECT max(import_runs.finished_at) FROM import_runs "
        "WHERE import_runs.account_id = mail_accounts.id AND import_runs.error IS NULL)"
    )


def downgrade():
    with op.batch_alter_table("mail_accounts") as batch:
        batch.drop_column("last_error_code")
        batch.drop_column("last_success_at")
    with op.batch_alter_table("folder_states") as batch:
        batch.drop_column("reconciled_at")
        batch.drop_column("reconciliation")
        batch.drop_column("uidnext_pending_since")
        batch.drop_column("polled_at")
        batch.drop_column("server_messages")

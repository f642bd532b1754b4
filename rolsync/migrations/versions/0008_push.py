"""Push (IMAP IDLE): a per-mailbox switch, and the deployment's settings table for the global one

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("mail_accounts") as batch:
        batch.add_column(sa.Column("push_enabled", sa.Boolean(), nullable=False, server_default=sa.true()))
    op.create_table(
        "app_settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_app_settings")),
    )


def downgrade():
    op.drop_table("app_settings")
    with op.batch_alter_table("mail_accounts") as batch:
        batch.drop_column("push_enabled")

"""The web panel: who resolved a warning and how, a user's last sign-in, the ledger by date

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("import_warnings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("resolved_by", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("resolution", sa.String(length=32), nullable=True))
    with op.batch_alter_table("imported_messages", schema=None) as batch_op:
        batch_op.create_index("ix_imported_messages_created_at", ["created_at"], unique=False)


def downgrade():
    with op.batch_alter_table("imported_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_imported_messages_created_at")
    with op.batch_alter_table("import_warnings", schema=None) as batch_op:
        batch_op.drop_column("resolution")
        batch_op.drop_column("resolved_by")
        batch_op.drop_column("resolved_at")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("last_login_at")

"""Rules: messages held for records added later, and the ledger's details (dropped attachments)

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "pending_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("message_key", sa.String(length=500), nullable=False),
        sa.Column("raw_sha256", sa.String(length=64), nullable=False),
        sa.Column("folder", sa.String(length=512), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["raw_sha256"], ["stored_files.sha256"],
                                name=op.f("fk_pending_messages_raw_sha256_stored_files")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_pending_messages_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_messages")),
        sa.UniqueConstraint("user_id", "address", "message_key",
                            name=op.f("uq_pending_messages_user_id_address_message_key")),
    )
    with op.batch_alter_table("pending_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pending_messages_address"), ["address"], unique=False)
        batch_op.create_index(batch_op.f("ix_pending_messages_user_id"), ["user_id"], unique=False)
    with op.batch_alter_table("imported_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("details", sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table("imported_messages", schema=None) as batch_op:
        batch_op.drop_column("details")
    with op.batch_alter_table("pending_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pending_messages_user_id"))
        batch_op.drop_index(batch_op.f("ix_pending_messages_address"))
    op.drop_table("pending_messages")

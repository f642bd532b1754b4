"""Privacy: who sees a mailbox's notes, how much is captured, private mail, removed notes, erasures

Revision ID: 0011
Revises: 0010
"""
from alembic import op
import sqlalchemy as sa

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("mail_accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("visibility", sa.String(length=16), server_default="everyone",
                                      nullable=False))
        batch_op.add_column(sa.Column("capture_level", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("private_keyword", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("private_folder", sa.String(length=512), nullable=True))
    with op.batch_alter_table("notes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("capture_level", sa.String(length=16), server_default="full", nullable=False))
    with op.batch_alter_table("imported_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "privacy_policy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("capture_default", sa.String(length=16), server_default="full", nullable=False),
        sa.Column("capture_locked", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("retention_months", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_by", sa.String(length=320), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_policy")),
    )
    op.create_table(
        "suppressed_addresses",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_suppressed_addresses")),
    )
    op.create_table(
        "erasures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("erased_by", sa.String(length=320), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasures")),
    )


def downgrade():
    op.drop_table("privacy_policy")
    op.drop_table("erasures")
    op.drop_table("suppressed_addresses")
    with op.batch_alter_table("imported_messages", schema=None) as batch_op:
        batch_op.drop_column("removed_at")
    with op.batch_alter_table("notes", schema=None) as batch_op:
        batch_op.drop_column("capture_level")
    with op.batch_alter_table("mail_accounts", schema=None) as batch_op:
        batch_op.drop_column("private_folder")
        batch_op.drop_column("private_keyword")
        batch_op.drop_column("capture_level")
        batch_op.drop_column("visibility")

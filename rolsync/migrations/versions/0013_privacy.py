"""Privacy: who sees a mailbox's notes, erased people's address hashes, and the erasure audit

Revision ID: 0013
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa

revision = "0013"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("mail_accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("visibility", sa.String(length=16), server_default="everyone",
                                      nullable=False))
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
    op.drop_table("erasures")
    op.drop_table("suppressed_addresses")
    with op.batch_alter_table("mail_accounts", schema=None) as batch_op:
        batch_op.drop_column("visibility")

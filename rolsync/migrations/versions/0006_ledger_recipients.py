"""The ledger keeps each message's recipients, so the history finds skipped mail by any address on it

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("imported_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("to_addrs", sa.Text(), server_default="", nullable=False))


def downgrade():
    with op.batch_alter_table("imported_messages", schema=None) as batch_op:
        batch_op.drop_column("to_addrs")

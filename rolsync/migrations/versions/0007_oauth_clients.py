"""Google / Microsoft app registrations saved in the admin panel, the secret encrypted

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "oauth_clients",
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("client_secret_encrypted", sa.Text(), nullable=False),
        sa.Column("tenant", sa.String(length=255), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["updated_by_id"], ["users.id"], name=op.f("fk_oauth_clients_updated_by_id_users")),
        sa.PrimaryKeyConstraint("provider", name=op.f("pk_oauth_clients")),
    )


def downgrade():
    # Mailboxes connected with a provider set up only here stop importing until the environment sets it.
    op.drop_table("oauth_clients")

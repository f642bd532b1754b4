"""Mailboxes connected with OAuth 2.0 (Google, Microsoft 365): how an account signs in, and its tokens

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("mail_accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("auth_method", sa.String(length=16), server_default="password",
                                      nullable=False))
        batch_op.add_column(sa.Column("oauth_provider", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("oauth_refresh_token_encrypted", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("oauth_access_token_encrypted", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("oauth_access_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.alter_column("password_encrypted", existing_type=sa.Text(), nullable=True)


def downgrade():
    # An OAuth mailbox has no password to fall back on: keep it, switched off, until one is saved.
    op.execute(sa.text("UPDATE mail_accounts SET password_encrypted = '', enabled = :off "
                       "WHERE password_encrypted IS NULL").bindparams(off=False))
    with op.batch_alter_table("mail_accounts", schema=None) as batch_op:
        batch_op.alter_column("password_encrypted", existing_type=sa.Text(), nullable=False)
        batch_op.drop_column("oauth_access_expires_at")
        batch_op.drop_column("oauth_access_token_encrypted")
        batch_op.drop_column("oauth_refresh_token_encrypted")
        batch_op.drop_column("oauth_provider")
        batch_op.drop_column("auth_method")

"""New people: what an intake item shows (the applicant's name, the attachments) kept with its warning row

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("import_warnings") as batch:
        batch.add_column(sa.Column("details", sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table("import_warnings") as batch:
        batch.drop_column("details")

"""reading: how a file is to be read (encoding, delimiter, decimal mark) and how it was

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 18:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("import_job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("encoding", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("delimiter", sa.String(length=1), nullable=True))
        batch_op.add_column(sa.Column("decimal", sa.String(length=1), nullable=True))
        batch_op.add_column(sa.Column("reading", sa.JSON(), nullable=True))
    with op.batch_alter_table("column_mapping", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reading", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("column_mapping", schema=None) as batch_op:
        batch_op.drop_column("reading")
    with op.batch_alter_table("import_job", schema=None) as batch_op:
        batch_op.drop_column("reading")
        batch_op.drop_column("decimal")
        batch_op.drop_column("delimiter")
        batch_op.drop_column("encoding")

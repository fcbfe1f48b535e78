"""mode: create_only / update_only imports, the rows they skip, and the skipped rows' reasons

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 04:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("import_job", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("mode", sa.String(length=16), server_default="upsert", nullable=False)
        )
        batch_op.add_column(sa.Column("skipped", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("import_row_error", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("skipped", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("import_row_error", schema=None) as batch_op:
        batch_op.drop_column("skipped")
    with op.batch_alter_table("import_job", schema=None) as batch_op:
        batch_op.drop_column("skipped")
        batch_op.drop_column("mode")

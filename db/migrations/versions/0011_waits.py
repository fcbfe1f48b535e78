"""waits: the time an import waited for its review, and the runs its answers started

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 15:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("import_job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paused_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("waited_s", sa.Float(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("review_runs", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("import_job", schema=None) as batch_op:
        batch_op.drop_column("review_runs")
        batch_op.drop_column("waited_s")
        batch_op.drop_column("paused_since")

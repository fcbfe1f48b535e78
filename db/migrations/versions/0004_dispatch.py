"""dispatch: a job asks for a flow run, which is created off the request path

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 02:20:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("import_job", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("run_requested_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("run_key", sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column("waiting_for", sa.Text(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_import_job_run_requested_at"), ["run_requested_at"], unique=False
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("import_job", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_import_job_run_requested_at"))
        batch_op.drop_column("waiting_for")
        batch_op.drop_column("run_key")
        batch_op.drop_column("run_requested_at")

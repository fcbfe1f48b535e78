"""crash recovery: heartbeat, automatic resumes, writer turn

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 13:55:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("import_job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("resumes", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("writing_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_import_job_heartbeat_at"), ["heartbeat_at"], unique=False
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("import_job", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_import_job_heartbeat_at"))
        batch_op.drop_column("writing_since")
        batch_op.drop_column("resumes")
        batch_op.drop_column("heartbeat_at")

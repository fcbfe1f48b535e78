"""review and column mapping: a job's mapping, header row and review; saved mappings

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 09:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("import_job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mapping", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("header_row", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("header_map", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("requested_by", sa.String(length=100), nullable=True))
        batch_op.add_column(
            sa.Column("review", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("previewing", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("review_round", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("review_ready_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("preview", sa.JSON(), nullable=True))
    op.create_table(
        "column_mapping",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("header_key", sa.String(length=32), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("saved_by", sa.String(length=100), nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_column_mapping")),
        sa.UniqueConstraint("header_key", name=op.f("uq_column_mapping_header_key")),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("column_mapping")
    with op.batch_alter_table("import_job", schema=None) as batch_op:
        for column in (
            "preview",
            "reviewed_at",
            "review_ready_at",
            "review_round",
            "previewing",
            "review",
            "requested_by",
            "header_map",
            "header_row",
            "mapping",
        ):
            batch_op.drop_column(column)

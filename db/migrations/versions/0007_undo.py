"""undo: before-images of each import batch, and undo jobs that point at their import

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 09:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("import_job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("undo_of", sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column("undo_force", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("deleted", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("undo_removed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_import_job_undo_of"), ["undo_of"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_import_job_undo_of_import_job"),
            "import_job",
            ["undo_of"],
            ["id"],
            ondelete="CASCADE",
        )
    op.create_table(
        "item_undo",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("batch_no", sa.Integer(), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("created", sa.Text(), nullable=False),
        sa.Column("changed", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["import_job.id"],
            name=op.f("fk_item_undo_job_id_import_job"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_item_undo")),
    )
    with op.batch_alter_table("item_undo", schema=None) as batch_op:
        batch_op.create_index("ix_item_undo_job_id_batch_no", ["job_id", "batch_no"], unique=True)
    op.create_table(
        "item_restored",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("restored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_item_restored")),
    )
    with op.batch_alter_table("item_restored", schema=None) as batch_op:
        batch_op.create_index(
            "ix_item_restored_sku_restored_at", ["sku", "restored_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_item_restored_restored_at"), ["restored_at"], unique=False
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("item_restored", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_item_restored_restored_at"))
        batch_op.drop_index("ix_item_restored_sku_restored_at")
    op.drop_table("item_restored")
    with op.batch_alter_table("item_undo", schema=None) as batch_op:
        batch_op.drop_index("ix_item_undo_job_id_batch_no")
    op.drop_table("item_undo")
    with op.batch_alter_table("import_job", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_import_job_undo_of_import_job"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_import_job_undo_of"))
        batch_op.drop_column("undo_removed_at")
        batch_op.drop_column("deleted")
        batch_op.drop_column("undo_force")
        batch_op.drop_column("undo_of")

"""audit coverage of ledger rows; discovery cache

Revision ID: 0007
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
# The lead relinks the chain at merge time (0006 lands on another branch).
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_coverage",
        sa.Column("table_name", sa.String(length=40), nullable=False),
        sa.Column("row_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("table_name", "row_id"),
    )
    with op.batch_alter_table("audit_coverage", schema=None) as batch_op:
        batch_op.create_index("ix_audit_coverage_seq", ["seq"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_coverage", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_coverage_seq")
    op.drop_table("audit_coverage")

"""audit coverage of ledger rows; cache of EHR discovery and capabilities

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
# The lead relinks the chain at merge time (0006 lands on another branch).
down_revision = "0006"
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
    op.create_table(
        "ehr_metadata",
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("issuer", "kind"),
    )
    with op.batch_alter_table("ehr_metadata", schema=None) as batch_op:
        batch_op.create_index("ix_ehr_metadata_expires_at", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ehr_metadata", schema=None) as batch_op:
        batch_op.drop_index("ix_ehr_metadata_expires_at")
    op.drop_table("ehr_metadata")
    with op.batch_alter_table("audit_coverage", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_coverage_seq")
    op.drop_table("audit_coverage")

"""practitioners as the EHR describes them, for claims an auditor accepts

Revision ID: 0013_evidence
Revises: 0010

`practitioners` keeps each performer's and billing practitioner's name, credentials and NPI as last read from
the EHR, so a rollup from saved facts still names them on the claim.
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_evidence"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "practitioners",
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("reference", sa.String(length=500), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("credentials", sa.String(length=200), nullable=False),
        sa.Column("npi", sa.String(length=20), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.PrimaryKeyConstraint("organization_id", "reference"),
    )


def downgrade() -> None:
    op.drop_table("practitioners")

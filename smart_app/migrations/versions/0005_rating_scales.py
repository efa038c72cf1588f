"""rating scales recorded in the app

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rating_scales",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=200), nullable=False),
        sa.Column("scale", sa.String(length=40), nullable=False),
        sa.Column("loinc", sa.String(length=20), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("taken_on", sa.Date(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("recorded_by", sa.String(length=500), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("rating_scales", schema=None) as batch_op:
        batch_op.create_index("ix_rating_scales_org_patient", ["organization_id", "patient_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rating_scales", schema=None) as batch_op:
        batch_op.drop_index("ix_rating_scales_org_patient")
    op.drop_table("rating_scales")

"""comprehensive care plans written in the app, versioned and signed

Revision ID: 0014_care_plans
Revises: 0013_evidence

`care_plans` holds one plan per patient; `care_plan_versions` every version of it, append-only: drafts the care
team writes and the established versions a billing practitioner signs (with the next review date). Both are
covered by the audit chain (`ledger.coverage`).
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_care_plans"
down_revision = "0013_evidence"
branch_labels = None
depends_on = None

# The values of statuses.CarePlanStatus when this migration was written (a migration never imports the app's enums).
STATUSES = "'draft', 'established'"


def upgrade() -> None:
    op.create_table(
        "care_plans",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=200), nullable=False),
        sa.Column("started_by", sa.String(length=500), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("organization_id", "patient_id", name="uq_care_plans_org_patient"),
    )
    op.create_table(
        "care_plan_versions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("plan_id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=200), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("template", sa.String(length=60), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("written_by", sa.String(length=500), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("established_on", sa.Date(), nullable=True),
        sa.Column("review_due", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.ForeignKeyConstraint(["plan_id"], ["care_plans.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("plan_id", "number", name="uq_care_plan_versions_plan_number"),
        sa.CheckConstraint(f"status IN ({STATUSES})", name="ck_care_plan_versions_status"),
    )
    op.create_index("ix_care_plan_versions_org_patient", "care_plan_versions", ["organization_id", "patient_id"])


def downgrade() -> None:
    op.drop_index("ix_care_plan_versions_org_patient", table_name="care_plan_versions")
    op.drop_table("care_plan_versions")
    op.drop_table("care_plans")

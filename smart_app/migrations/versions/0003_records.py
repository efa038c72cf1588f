"""records: consents, attestations, audit chain, patients, month status

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "audit_events",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=True),
        sa.Column("actor", sa.String(length=500), nullable=False),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("hash"),
    )
    op.create_table(
        "chronic_attestations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=200), nullable=False),
        sa.Column("condition_id", sa.String(length=200), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("chronic", sa.Boolean(), nullable=False),
        sa.Column("attested_by", sa.String(length=500), nullable=False),
        sa.Column("attested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("chronic_attestations", schema=None) as batch_op:
        batch_op.create_index("ix_attestations_org_patient", ["organization_id", "patient_id"], unique=False)

    op.create_table(
        "consents",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=200), nullable=False),
        sa.Column("program", sa.String(length=10), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("explained_availability", sa.Boolean(), nullable=False),
        sa.Column("explained_cost_sharing", sa.Boolean(), nullable=False),
        sa.Column("explained_right_to_stop", sa.Boolean(), nullable=False),
        sa.Column("explained_one_practitioner", sa.Boolean(), nullable=False),
        sa.Column("obtained_on", sa.Date(), nullable=False),
        sa.Column("obtained_by", sa.String(length=500), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("withdraws_id", sa.String(length=36), nullable=True),
        sa.Column("writeback_status", sa.String(length=14), nullable=False),
        sa.Column("writeback_detail", sa.Text(), nullable=False),
        sa.Column("fhir_id", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
        ),
        sa.ForeignKeyConstraint(
            ["withdraws_id"],
            ["consents.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.create_index("ix_consents_org_patient", ["organization_id", "patient_id"], unique=False)

    op.create_table(
        "month_status",
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=200), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("eligible_programs", sa.JSON(), nullable=False),
        sa.Column("decision", sa.JSON(), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
        ),
        sa.PrimaryKeyConstraint("organization_id", "patient_id", "month"),
    )
    with op.batch_alter_table("month_status", schema=None) as batch_op:
        batch_op.create_index("ix_month_status_org_month", ["organization_id", "month"], unique=False)

    op.create_table(
        "patients",
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("birth_date", sa.String(length=10), nullable=True),
        sa.Column("mrn", sa.String(length=100), nullable=True),
        sa.Column("care_manager", sa.String(length=500), nullable=True),
        sa.Column("care_manager_name", sa.String(length=300), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
        ),
        sa.PrimaryKeyConstraint("organization_id", "patient_id"),
    )


def downgrade() -> None:

    op.drop_table("patients")
    with op.batch_alter_table("month_status", schema=None) as batch_op:
        batch_op.drop_index("ix_month_status_org_month")

    op.drop_table("month_status")
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_index("ix_consents_org_patient")

    op.drop_table("consents")
    with op.batch_alter_table("chronic_attestations", schema=None) as batch_op:
        batch_op.drop_index("ix_attestations_org_patient")

    op.drop_table("chronic_attestations")
    op.drop_table("audit_events")

"""practitioners as the EHR describes them, for claims an auditor accepts

Revision ID: 0013_evidence
Revises: 0010

`practitioners` keeps each performer's and billing practitioner's name, credentials and NPI as last read from
the EHR, so a rollup from saved facts still names them on the claim. `recorded_evidence` keeps the facts the
care team records in the app for the rules where the EHR has no element for them (TCM's medication reconciliation
and contact attempts, a CoCM episode start, QMB status, a high-risk judgement, a care plan on file).
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_evidence"
down_revision = "0012_scale"
branch_labels = None
depends_on = None

# The values of statuses.EvidenceKind when this migration was written (a migration never imports the app's enums).
KINDS = ", ".join(f"'{kind}'" for kind in ("tcm-medication-reconciliation", "tcm-contact-attempt", "cocm-episode-start",
                                           "qmb-status", "condition-high-risk", "care-plan"))


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
    op.create_table(
        "recorded_evidence",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("on_date", sa.Date(), nullable=True),
        sa.Column("flag", sa.Boolean(), nullable=True),
        sa.Column("recorded_by", sa.String(length=500), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.CheckConstraint(f"kind IN ({KINDS})", name="ck_recorded_evidence_kind"),
    )
    op.create_index("ix_recorded_evidence_org_patient", "recorded_evidence", ["organization_id", "patient_id"])


def downgrade() -> None:
    op.drop_index("ix_recorded_evidence_org_patient", table_name="recorded_evidence")
    op.drop_table("recorded_evidence")
    op.drop_table("practitioners")

"""enrollment beyond consent: a program offered, declined or not a candidate

Revision ID: 0016_enrollment
Revises: 0015_scale_items

`enrollment_events` keeps, per patient and program, that the program was offered, that the patient declined it
(date and reason) or is not a candidate (reason); append-only and covered by the audit chain (`ledger.coverage`).
The current status (enrolled, withdrawn, declined ...) is derived from these and the consents (`ledger.enrollment`).
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_enrollment"
down_revision = "0015_scale_items"
branch_labels = None
depends_on = None

# The values of statuses.EnrollmentKind when this migration was written (a migration never imports the app's enums).
KINDS = "'offered', 'declined', 'not-candidate'"


def upgrade() -> None:
    op.create_table(
        "enrollment_events",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=200), nullable=False),
        sa.Column("program", sa.String(length=10), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("on_date", sa.Date(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.String(length=500), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.CheckConstraint(f"kind IN ({KINDS})", name="ck_enrollment_events_kind"),
    )
    op.create_index("ix_enrollment_events_org_patient", "enrollment_events", ["organization_id", "patient_id"])


def downgrade() -> None:
    op.drop_index("ix_enrollment_events_org_patient", table_name="enrollment_events")
    op.drop_table("enrollment_events")

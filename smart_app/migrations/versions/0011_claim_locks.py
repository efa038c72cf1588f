"""month locks per claim: approving one patient's claim locks that patient-month only; the panel's summary column

Revision ID: 0011
Revises: 0010

`month_locks` (organization, month) becomes `claim_locks` (organization, patient, month). An organization-month
locked before this migration is locked again for the patients whose claim for that month was approved (or approved
and later replaced by a corrected claim); other patients' months open again, as they should have stayed.

`month_status.panel` (JSON, nullable) keeps the panel's summary of the page's Decision with the ledger state it
saw, so the panel reads it without the whole Decision; rows written before it are evaluated again by the panel.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "claim_locks",
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=200), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("locked_by", sa.String(length=500), nullable=False),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.PrimaryKeyConstraint("organization_id", "patient_id", "month"),
    )
    op.execute(
        "INSERT INTO claim_locks (organization_id, patient_id, month, locked_by, locked_at) "
        "SELECT DISTINCT l.organization_id, c.patient_id, l.month, l.locked_by, l.locked_at "
        "FROM month_locks l JOIN claims c ON c.organization_id = l.organization_id AND c.month = l.month "
        "WHERE c.status IN ('approved', 'replaced')")
    op.drop_table("month_locks")
    with op.batch_alter_table("month_status") as batch_op:
        batch_op.add_column(sa.Column("panel", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("month_status") as batch_op:
        batch_op.drop_column("panel")
    op.create_table(
        "month_locks",
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("locked_by", sa.String(length=500), nullable=False),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.PrimaryKeyConstraint("organization_id", "month"),
    )
    op.execute(
        "INSERT INTO month_locks (organization_id, month, locked_by, locked_at) "
        "SELECT organization_id, month, MIN(locked_by), MIN(locked_at) FROM claim_locks "
        "GROUP BY organization_id, month")
    op.drop_table("claim_locks")

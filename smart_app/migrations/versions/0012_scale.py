"""rollup batches and scheduled runs

Revision ID: 0012_scale
Revises: 0010

`rollup_batches`: a month's rollup split into ranges of patient ids that several processes claim (`FOR UPDATE
SKIP LOCKED`), so two rollups of one month share the work instead of racing. `scheduled_runs`: the one row per
organization and period that `smart-app worker` inserts to run a scheduled job once across machines.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_scale"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollup_batches",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("after_patient", sa.String(length=200), nullable=True),
        sa.Column("through_patient", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("claimed_by", sa.String(length=200), nullable=True),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("patients", sa.Integer(), nullable=False),
        sa.Column("new_versions", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("billable", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.PrimaryKeyConstraint("run_id", "seq"),
        sa.CheckConstraint("status IN ('pending', 'claimed', 'done')", name="ck_rollup_batches_status"),
    )
    op.create_index("ix_rollup_batches_open", "rollup_batches", ["organization_id", "month", "status"])
    op.create_table(
        "scheduled_runs",
        sa.Column("job", sa.String(length=40), nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=20), nullable=False),
        sa.Column("started_by", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("rollup_run", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.PrimaryKeyConstraint("job", "organization_id", "period"),
    )


def downgrade() -> None:
    op.drop_table("scheduled_runs")
    op.drop_index("ix_rollup_batches_open", table_name="rollup_batches")
    op.drop_table("rollup_batches")

"""ledger tables: time entries, timers, month locks

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_RUNNING = "stopped_at IS NULL"


def upgrade() -> None:
    op.create_table(
        "month_locks",
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("locked_by", sa.String(length=500), nullable=False),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.PrimaryKeyConstraint("organization_id", "month"),
    )
    op.create_table(
        "timers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=200), nullable=False),
        sa.Column("performer", sa.String(length=500), nullable=False),
        sa.Column("role", sa.String(length=40), nullable=False),
        sa.Column("program", sa.String(length=10), nullable=False),
        sa.Column("activity", sa.String(length=80), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=12), nullable=True),
        sa.Column("closed_by", sa.String(length=500), nullable=True),
        sa.Column("minutes", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    # One running timer per person: a partial unique index, enforced by the database itself.
    op.create_index("uq_timers_one_running", "timers", ["organization_id", "performer"], unique=True,
                    sqlite_where=sa.text(_RUNNING), postgresql_where=sa.text(_RUNNING))
    op.create_table(
        "time_entries",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=200), nullable=False),
        sa.Column("performer", sa.String(length=500), nullable=False),
        sa.Column("role", sa.String(length=40), nullable=False),
        sa.Column("program", sa.String(length=10), nullable=False),
        sa.Column("activity", sa.String(length=80), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("shared", sa.Boolean(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("corrects_id", sa.String(length=36), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.String(length=500), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("split_group", sa.String(length=36), nullable=True),
        sa.Column("timer_id", sa.String(length=36), nullable=True),
        sa.CheckConstraint("minutes > 0", name="ck_time_entries_minutes_positive"),
        sa.ForeignKeyConstraint(["corrects_id"], ["time_entries.id"]),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.ForeignKeyConstraint(["timer_id"], ["timers.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("corrects_id", name="uq_time_entries_corrects_id"),
    )
    op.create_index("ix_time_entries_org_patient_month", "time_entries",
                    ["organization_id", "patient_id", "month"], unique=False)
    op.create_index("ix_time_entries_org_performer_start", "time_entries",
                    ["organization_id", "performer", "starts_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_time_entries_org_performer_start", table_name="time_entries")
    op.drop_index("ix_time_entries_org_patient_month", table_name="time_entries")
    op.drop_table("time_entries")
    op.drop_index("uq_timers_one_running", table_name="timers")
    op.drop_table("timers")
    op.drop_table("month_locks")

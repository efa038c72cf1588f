"""statuses and kinds checked by the database

Revision ID: 0008
Revises: 0007

Each status or kind column accepts only the values of its enum in `smart_app/statuses.py`. The values are
written out here, not imported: a migration describes the schema as it was at this revision. SQLite cannot
add a constraint to a table, so there batch mode copies each table (`smart_app.db.upgrade` turns foreign-key
enforcement off for that and checks the references afterwards).
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# (table, constraint, condition)
CHECKS = (
    ("claims", "ck_claims_status",
     "status IN ('proposed', 'held', 'approved', 'superseded', 'replaced', 'nothing-billable')"),
    ("outbox", "ck_outbox_status", "status IN ('pending', 'done', 'failed', 'not-accepted', 'withdrawn')"),
    ("consents", "ck_consents_kind", "kind IN ('consent', 'withdrawal')"),
    ("consents", "ck_consents_writeback_status",
     "writeback_status IN ('pending', 'written', 'not-accepted', 'failed')"),
    ("time_entries", "ck_time_entries_kind", "kind IN ('entry', 'amendment', 'void')"),
    ("timers", "ck_timers_outcome", "outcome IN ('recorded', 'discarded', 'too-short')"),
)


def upgrade() -> None:
    for table in dict.fromkeys(table for table, _, _ in CHECKS):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for _, name, condition in (c for c in CHECKS if c[0] == table):
                batch_op.create_check_constraint(name, condition)


def downgrade() -> None:
    for table in dict.fromkeys(table for table, _, _ in CHECKS):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for _, name, _ in (c for c in CHECKS if c[0] == table):
                batch_op.drop_constraint(name, type_="check")

"""rating scales recorded item by item

Revision ID: 0015_scale_items
Revises: 0014_care_plans

`rating_scales.items` keeps the answers of a scale given item by item (PHQ-9, GAD-7: item LOINC code -> score),
NULL for a total-only score. Rows written before this column stay NULL; `ledger.coverage` leaves a NULL `items`
out of a row's digest, so their audit records still match.
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_scale_items"
down_revision = "0014_care_plans"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rating_scales") as batch_op:
        batch_op.add_column(sa.Column("items", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rating_scales") as batch_op:
        batch_op.drop_column("items")

"""roles granted in the app; sessions without a patient (a biller's own sign-in); launches bound to a browser

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "role_grants",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("user_ref", sa.String(length=500), nullable=False),
        sa.Column("user_name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=4), nullable=False),
        sa.Column("role", sa.String(length=40), nullable=False),
        sa.Column("granted_by", sa.String(length=500), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("revoked_by", sa.String(length=500), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_role_grants_org_user", "role_grants", ["organization_id", "user_ref"])
    op.create_index("uq_role_grants_active", "role_grants", ["organization_id", "user_ref", "kind", "role"],
                    unique=True, sqlite_where=sa.text("revoked_at IS NULL"),
                    postgresql_where=sa.text("revoked_at IS NULL"))
    op.create_index("uq_role_grants_one_time_role", "role_grants", ["organization_id", "user_ref"], unique=True,
                    sqlite_where=sa.text("revoked_at IS NULL AND kind = 'time'"),
                    postgresql_where=sa.text("revoked_at IS NULL AND kind = 'time'"))
    with op.batch_alter_table("app_sessions") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=12), nullable=False, server_default="ehr-launch"))
        batch.add_column(sa.Column("user_name", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("role_codes", sa.JSON(), nullable=True))
        batch.alter_column("patient_id", existing_type=sa.String(length=200), nullable=True)
        batch.drop_column("performer_role")
    with op.batch_alter_table("claims") as batch:
        batch.add_column(sa.Column("reviewed_by_name", sa.String(length=200), nullable=True))
    with op.batch_alter_table("pending_launches") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=12), nullable=False, server_default="ehr-launch"))
        batch.add_column(sa.Column("next_path", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("browser_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pending_launches") as batch:
        batch.drop_column("browser_hash")
        batch.drop_column("next_path")
        batch.drop_column("kind")
    with op.batch_alter_table("claims") as batch:
        batch.drop_column("reviewed_by_name")
    with op.batch_alter_table("app_sessions") as batch:
        batch.add_column(sa.Column("performer_role", sa.String(length=40), nullable=True))
        batch.alter_column("patient_id", existing_type=sa.String(length=200), nullable=False)
        batch.drop_column("role_codes")
        batch.drop_column("user_name")
        batch.drop_column("kind")
    op.drop_index("uq_role_grants_one_time_role", table_name="role_grants")
    op.drop_index("uq_role_grants_active", table_name="role_grants")
    op.drop_index("ix_role_grants_org_user", table_name="role_grants")
    op.drop_table("role_grants")

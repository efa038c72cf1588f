"""organizations may share an issuer

Revision ID: 0010
Revises: 0008

Several organizations (two clinics on one Epic instance, or one EHR registered both as a public and as a
confidential client) can use one EHR: `organizations.issuer` loses its UNIQUE constraint and keeps an index,
and each organization is launched from its own URL (`/launch/<id>`). The constraint was created unnamed
(0001): PostgreSQL named it itself, found here by inspection; SQLite reflects it without a name, so batch mode
names it by convention to drop it while it copies the table.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None

_SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _issuer_unique(bind: sa.Connection) -> str | None:
    for constraint in sa.inspect(bind).get_unique_constraints("organizations"):
        if constraint["column_names"] == ["issuer"]:
            return constraint["name"]
    return None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        with op.batch_alter_table("organizations", naming_convention=_SQLITE_NAMES) as batch_op:
            batch_op.drop_constraint("uq_organizations_issuer", type_="unique")
            batch_op.create_index("ix_organizations_issuer", ["issuer"])
        return
    name = _issuer_unique(bind)
    if name:
        op.drop_constraint(name, "organizations", type_="unique")
    op.create_index("ix_organizations_issuer", "organizations", ["issuer"])


def downgrade() -> None:
    # Fails, as it should, while two organizations share an issuer: remove one of them first.
    with op.batch_alter_table("organizations") as batch_op:
        batch_op.drop_index("ix_organizations_issuer")
        batch_op.create_unique_constraint("uq_organizations_issuer", ["issuer"])

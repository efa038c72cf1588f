"""The table of roles granted in the app by an administrator (seeds in organization files are not stored)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from smart_app.db import Base, UTCDateTime


class RoleGrantRow(Base):
    """One role granted to one EHR user in one organization; a revocation fills `revoked_at`, never deletes."""

    __tablename__ = "role_grants"
    __table_args__ = (
        Index("ix_role_grants_org_user", "organization_id", "user_ref"),
        # One active grant of a role per person, and one active time role per person.
        Index("uq_role_grants_active", "organization_id", "user_ref", "kind", "role", unique=True,
              sqlite_where=text("revoked_at IS NULL"), postgresql_where=text("revoked_at IS NULL")),
        Index("uq_role_grants_one_time_role", "organization_id", "user_ref", unique=True,
              sqlite_where=text("revoked_at IS NULL AND kind = 'time'"),
              postgresql_where=text("revoked_at IS NULL AND kind = 'time'")),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    # The EHR user as the id_token names it (fhirUser: Practitioner/123, Person/456), or sub:<sub>.
    user_ref: Mapped[str] = mapped_column(String(500))
    user_name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(4))  # app | time
    role: Mapped[str] = mapped_column(String(40))
    granted_by: Mapped[str] = mapped_column(String(500))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    note: Mapped[str] = mapped_column(Text)
    revoked_by: Mapped[str | None] = mapped_column(String(500), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

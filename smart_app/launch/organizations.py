"""The organization registry: one TOML file per organization in `launch/`, mirrored in the database."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from smart_app.access.config import assignments_json, mappings_json, parse_assignments, parse_role_map
from smart_app.access.roles import Assignment, RoleMapping
from smart_app.db import utcnow
from smart_app.dialect_upsert import upsert
from smart_app.errors import ConfigError
from smart_app.launch.models import OrganizationRow
from smart_app.paths import data_path

CLIENT_AUTH_METHODS = ("public", "private_key_jwt")
_REQUIRED = ("id", "name", "issuer", "client_id")


@dataclass(frozen=True)
class Organization:
    """An installed organization: which EHR it trusts and its billing defaults."""

    id: str
    name: str
    issuer: str
    client_id: str
    client_auth: str = "public"
    key_id: str = ""
    frame_origins: tuple[str, ...] = ()
    timezone: str = "America/New_York"
    place_of_service: str = "11"
    billing_practitioner: str = ""
    supervising_practitioner: str = ""
    rule_set: str = "medicare-2026"
    # The practice's own Organization resource in the EHR, referenced from what the app writes.
    fhir_organization: str = ""
    # The client id of the app's SMART Backend Services registration, where the EHR registers backend apps
    # apart from launched ones (Epic does); empty: the launch client id serves both.
    backend_client_id: str = ""
    # Roles: mappings of what the EHR exposes, and assignments seeded from the file (smart_app.access).
    role_map: tuple[RoleMapping, ...] = ()
    role_assignments: tuple[Assignment, ...] = ()
    # One-person practices may let a biller approve a claim that carries their own minutes.
    allow_self_approval: bool = False
    # The EHR's address for a patient's chart, with {patient_id}: the running timer's banner links there when
    # the timer runs for another patient. Empty: the banner names the patient without a link.
    chart_link: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def backend_client(self) -> str:
        """The client id the month-end jobs authenticate as."""
        return self.backend_client_id or self.client_id

    def to_config(self) -> dict[str, object]:
        """JSON-safe form stored in the database."""
        data = asdict(self)
        data["frame_origins"] = list(self.frame_origins)
        data["role_map"] = mappings_json(self.role_map)
        data["role_assignments"] = assignments_json(self.role_assignments)
        return data


def parse_organization(data: dict[str, object], source: str) -> Organization:
    """Validate one organization's settings; `source` names the file in error messages."""
    missing = [key for key in _REQUIRED if not data.get(key)]
    if missing:
        raise ConfigError(f"{source}: missing {', '.join(missing)}.",
                          "Every organization file needs id, name, issuer and client_id.")
    issuer = str(data["issuer"]).rstrip("/")
    if not issuer.startswith(("http://", "https://")):
        raise ConfigError(f"{source}: issuer {issuer!r} is not an http(s) URL.",
                          "Use the EHR's FHIR base URL, as the EHR sends it in `iss`.")
    client_auth = str(data.get("client_auth", "public"))
    if client_auth not in CLIENT_AUTH_METHODS:
        raise ConfigError(f"{source}: client_auth {client_auth!r} is not supported.",
                          f"Use one of {', '.join(CLIENT_AUTH_METHODS)}.")
    timezone = str(data.get("timezone", "America/New_York"))
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"{source}: unknown timezone {timezone!r}.",
                          "Use an IANA name such as America/Chicago.") from exc
    origins = data.get("frame_origins", [])
    if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
        raise ConfigError(f"{source}: frame_origins must be a list of origins.",
                          'For example frame_origins = ["https://ehr.example.org"].')
    known = set(Organization.__dataclass_fields__) | {"role_assignment"}
    gathered = data.get("extra")
    return Organization(
        id=str(data["id"]), name=str(data["name"]), issuer=issuer,
        client_id=str(data["client_id"]), client_auth=client_auth,
        key_id=str(data.get("key_id", "")), frame_origins=tuple(o.rstrip("/") for o in origins),
        timezone=timezone, place_of_service=str(data.get("place_of_service", "11")),
        billing_practitioner=str(data.get("billing_practitioner", "")),
        supervising_practitioner=str(data.get("supervising_practitioner", "")),
        rule_set=str(data.get("rule_set", "medicare-2026")),
        fhir_organization=str(data.get("fhir_organization", "")),
        backend_client_id=str(data.get("backend_client_id", "")),
        role_map=parse_role_map(data.get("role_map"), source),
        role_assignments=parse_assignments(data.get("role_assignment", data.get("role_assignments")), source),
        chart_link=_chart_link(data.get("chart_link", ""), source),
        allow_self_approval=_flag(data.get("allow_self_approval", False), "allow_self_approval", source),
        # Read back from the database, the extras arrive already gathered under "extra".
        extra={**(gathered if isinstance(gathered, dict) else {}),
               **{k: v for k, v in data.items() if k not in known and k != "extra"}},
    )


def _chart_link(value: object, source: str) -> str:
    link = str(value or "")
    if link and not (link.startswith(("http://", "https://")) and "{patient_id}" in link):
        raise ConfigError(f"{source}: chart_link {link!r} is not an http(s) URL with {{patient_id}} in it.",
                          'For example chart_link = "https://ehr.example.org/chart/{patient_id}".')
    return link


def chart_address(org: Organization, patient_id: str) -> str | None:
    """The EHR's address of a patient's chart, where the organization configured one."""
    return org.chart_link.replace("{patient_id}", quote(patient_id, safe="")) if org.chart_link else None


def _flag(value: object, key: str, source: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{source}: {key} must be true or false.", f"Write {key} = false (or true).")
    return value


def load_organization_file(path: Path) -> Organization:
    """Read and validate one organization TOML file."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read organization file: {exc}.",
                          "Fix the TOML syntax or the file permissions.") from exc
    return parse_organization(data, str(path))


def load_directory(directory: Path | None = None) -> list[Organization]:
    """Every organization file in `directory` (default: the packaged `launch/` folder)."""
    directory = directory or data_path("launch")
    orgs = [load_organization_file(p) for p in sorted(directory.glob("*.toml"))]
    seen: set[str] = set()
    for org in orgs:
        # Organizations may share an issuer (each is launched from its own URL); an id names one only.
        if org.id in seen:
            raise ConfigError(f"Two organization files share the id {org.id!r} in {directory}.",
                              "Give each organization its own id.")
        seen.add(org.id)
    return orgs


def with_overrides(org: Organization, **changes: object) -> Organization:
    """A copy of `org` with some settings replaced (the demo rewrites the sandbox's URLs)."""
    return replace(org, **changes)  # type: ignore[arg-type]


def save_organizations(session: Session, orgs: list[Organization]) -> None:
    """Insert or update each organization in the database.

    An upsert, because every worker of `serve --workers N` saves the organization files as it starts: two
    reading "absent" and both inserting would stop one worker with a duplicate key.
    """
    for org in orgs:
        values = {"id": org.id, "name": org.name, "issuer": org.issuer, "client_id": org.client_id,
                  "client_auth": org.client_auth, "config": org.to_config(), "updated_at": utcnow()}
        upsert(session, OrganizationRow, values, ("id",))
    # Rows this session already holds are read again, so the caller sees what was just written.
    session.expire_all()


# Parsed organizations by (id, updated_at): every request reads its organization's row, and parsing it (role maps,
# rates, timezone) cost more than the read. Saving a changed file moves updated_at, so a worker never uses a stale
# parse; this memoizes a pure function of the row and holds no state of its own.
_PARSED: dict[tuple[str, datetime], Organization] = {}


def _from_row(row: OrganizationRow) -> Organization:
    key = (row.id, row.updated_at)
    found = _PARSED.get(key)
    if found is None:
        if len(_PARSED) > 256:
            _PARSED.clear()
        found = _PARSED[key] = parse_organization(dict(row.config), f"organization {row.id!r} in the database")
    return found


def organizations_for_issuer(session: Session, issuer: str) -> list[Organization]:
    """The organizations whose EHR has this FHIR base (several may share one EHR), by id."""
    rows = session.scalars(select(OrganizationRow).where(OrganizationRow.issuer == issuer.rstrip("/"))
                           .order_by(OrganizationRow.id))
    return [_from_row(row) for row in rows]


def get_organization(session: Session, org_id: str) -> Organization | None:
    """The organization with this id, or None."""
    row = session.get(OrganizationRow, org_id)
    return _from_row(row) if row else None


def list_organizations(session: Session) -> list[Organization]:
    """All organizations, by id."""
    return [_from_row(r) for r in session.scalars(select(OrganizationRow).order_by(OrganizationRow.id))]

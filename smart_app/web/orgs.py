"""The session's organization and its calendar."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from smart_app.db import transaction
from smart_app.errors import SessionExpired
from smart_app.launch.organizations import Organization, get_organization
from smart_app.launch.sessions import ActiveSession
from smart_app.services import AppContext


def org_today(org: Organization) -> dt.date:
    """Today's date in the organization's timezone: months close at local midnight."""
    return dt.datetime.now(ZoneInfo(org.timezone)).date()


def load_organization(app: AppContext, session: ActiveSession) -> Organization:
    """The session's organization, or SessionExpired when it was removed."""
    with transaction(app.sessions) as db:
        org = get_organization(db, session.organization_id)
    if org is None:
        raise SessionExpired("This session's organization is no longer installed.",
                             "Ask the EHR administrator, then relaunch the app from the chart.")
    return org

"""An organization's calendar."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from smart_app.launch.organizations import Organization


def org_today(org: Organization) -> dt.date:
    """Today's date in the organization's timezone: months close at local midnight."""
    return dt.datetime.now(ZoneInfo(org.timezone)).date()

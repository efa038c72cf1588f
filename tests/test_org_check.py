"""`org check` reads scopes_supported as EHRs write it, wildcards included."""

from __future__ import annotations

import pytest

from smart_app.launch.org_check import scope_listed


@pytest.mark.parametrize(("scope", "supported", "listed"), [
    ("patient/Condition.rs", ("patient/Condition.rs",), True),
    ("patient/Condition.rs", ("patient/*.cruds",), True),
    ("patient/Condition.rs", ("patient/*.read",), True),
    ("patient/Consent.c", ("patient/*.read",), False),
    ("patient/Consent.c", ("patient/*.write",), True),
    ("patient/Consent.c", ("patient/Consent.*",), True),
    ("user/Practitioner.r", ("patient/*.cruds",), False),
    ("launch", ("launch", "openid"), True),
    ("fhirUser", ("launch", "openid"), False),
])
def test_scope_listing(scope: str, supported: tuple[str, ...], listed: bool) -> None:
    assert scope_listed(scope, supported) is listed

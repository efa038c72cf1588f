"""`org check` reads scopes_supported as EHRs write it, wildcards included; `--live` gets a real backend token."""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from smart_app.launch.keys import public_jwks
from smart_app.launch.org_check import scope_listed
from smart_app.paths import data_path
from smart_app.sandbox import SandboxClient, SandboxConfig, create_app
from tests.databases import one_transaction
from tests.live_server import serve
from tests.test_cli import run_cli


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


# --- org check --live: a real backend token and one FHIR read, over HTTP against the sandbox EHR -----------

CLIENT = "clinic-app"


@pytest.fixture
def installed(tmp_path: Path) -> dict[str, str]:
    """An app database with a signing key and nothing else: the environment of the commands."""
    env = {"SMART_APP_DATA_DIR": str(tmp_path), "SMART_APP_LAUNCH_DIR": str(tmp_path / "launch"),
           "SMART_APP_SECRET_KEY": "s" * 40, "PATH": "/usr/bin:/bin"}
    (tmp_path / "launch").mkdir()
    for command in (["db", "upgrade"], ["keys", "generate"]):
        done = run_cli(*command, env=env)
        assert done.returncode == 0, done.stderr
    return env


def app_jwks(env: dict[str, str]) -> dict:
    with one_transaction(f"sqlite:///{env['SMART_APP_DATA_DIR']}/smart_app.db") as db:
        return public_jwks(db)


@contextlib.contextmanager
def ehr_with(client: SandboxClient) -> Iterator[str]:
    """The sandbox EHR (tokens required) with one registered client; its FHIR base."""
    with serve(lambda base: create_app(SandboxConfig(base_url=base, fixtures_dir=data_path("fixtures"),
                                                     clients=[client]))) as base:
        yield f"{base}/fhir"


def check_live(env: dict[str, str], fhir_base: str) -> subprocess.CompletedProcess[str]:
    org_file = Path(env["SMART_APP_DATA_DIR"]) / "clinic.toml"
    org_file.write_text(f'id = "clinic"\nname = "Clinic"\nissuer = "{fhir_base}"\nclient_id = "{CLIENT}"\n'
                        'client_auth = "private_key_jwt"\n')
    added = run_cli("org", "add", str(org_file), env=env)
    assert added.returncode == 0, added.stderr
    return run_cli("org", "check", "clinic", "--live", env=env)


def test_live_check_gets_a_real_token_and_reads(installed: dict[str, str]) -> None:
    client = SandboxClient(CLIENT, [], "private_key_jwt", jwks=app_jwks(installed))
    with ehr_with(client) as fhir_base:
        checked = check_live(installed, fhir_base)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    out = checked.stdout
    assert "Live check (a real backend token with the app's key, and one FHIR read with it):" in out
    assert re.search(r"\[ok \] A real backend token from \S+/auth/token \(backend client 'clinic-app', key rs384-",
                     out)
    assert "[ok ] The system scopes the month-end jobs ask for were granted" in out
    assert re.search(rf"\[ok \] One FHIR read with that token \(GET {re.escape(fhir_base)}/Practitioner\?_count=1\): "
                     r"a Bundle with 1 resource\(s\)\n", out)


def test_live_check_says_the_ehr_refused_the_client_that_it_advertised(installed: dict[str, str]) -> None:
    # Registered as a public client, as `smart-app sandbox --client-id` does: discovery still lists
    # client_credentials, so the plain check says backend services are fine (issue 15's reference launcher).
    with ehr_with(SandboxClient(CLIENT, [])) as fhir_base:
        checked = check_live(installed, fhir_base)
        plain = run_cli("org", "check", "clinic", env=installed)
    assert "[ok ] Backend services for the month-end rollup (client_credentials" in plain.stdout
    assert checked.returncode == 1
    out = checked.stdout
    assert re.search(r"\[FAILED\] A real backend token from \S+/auth/token \(backend client 'clinic-app'", out)
    assert "The EHR refused to issue a token: client_assertion iss is not a registered private_key_jwt client" in out
    assert "Check that the EHR registers 'clinic-app' for backend services (client_credentials)" in out
    assert "One FHIR read" not in out, "nothing is read without a token"
    assert "The live check failed: the month-end jobs" in out


def test_live_check_names_the_read_the_token_does_not_allow(installed: dict[str, str]) -> None:
    client = SandboxClient(CLIENT, [], "private_key_jwt", jwks=app_jwks(installed), scope="system/Patient.r")
    with ehr_with(client) as fhir_base:
        checked = check_live(installed, fhir_base)
    assert checked.returncode == 1
    out = checked.stdout
    assert "[ok ] A real backend token from" in out
    assert "[note] The system scopes the month-end jobs ask for were granted" in out
    assert "Not granted: system/CarePlan.crus system/CarePlan.rs" in out
    assert re.search(rf"\[FAILED\] One FHIR read with that token \(GET {re.escape(fhir_base)}/Practitioner\?_count=1\)"
                     r"\n\s+The EHR refused access to the Practitioner records", out)


def test_live_check_of_a_public_client_says_what_to_register(installed: dict[str, str], tmp_path: Path) -> None:
    with ehr_with(SandboxClient(CLIENT, [])) as fhir_base:
        org_file = tmp_path / "clinic.toml"
        org_file.write_text(f'id = "clinic"\nname = "Clinic"\nissuer = "{fhir_base}"\nclient_id = "{CLIENT}"\n')
        assert run_cli("org", "add", str(org_file), env=installed).returncode == 0
        checked = run_cli("org", "check", "clinic", "--live", env=installed)
        env = {k: v for k, v in installed.items() if k != "SMART_APP_SECRET_KEY"}
        without_secret = run_cli("org", "check", "clinic", "--live", env=env)
    assert checked.returncode == 1
    assert "[FAILED] A real backend token (backend client 'clinic-app')" in checked.stdout
    assert "set backend_client_id in the organization file" in checked.stdout
    assert without_secret.returncode == 2 and "SMART_APP_SECRET_KEY is not set" in without_secret.stderr

"""Settings from the environment and organization files: defaults, and clear errors when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from smart_app.errors import ConfigError
from smart_app.launch.organizations import load_directory, load_organization_file
from smart_app.settings import load_settings


def test_the_demo_defaults_to_sqlite_in_the_data_folder_and_keeps_the_secret_it_made(tmp_path: Path) -> None:
    env = {"SMART_APP_DATA_DIR": str(tmp_path)}
    first = load_settings(env, generate_secret=True)
    assert first.database_url == f"sqlite:///{tmp_path / 'smart_app.db'}"
    assert first.base_url == "http://localhost:8000"
    assert first.redirect_uri == "http://localhost:8000/callback"
    # The generated secret survives a restart, so sessions do too.
    assert load_settings(env, generate_secret=True).secret_key == first.secret_key
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_outside_the_demo_a_missing_secret_is_refused_not_made_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings({"SMART_APP_DATA_DIR": str(tmp_path)})
    assert "SMART_APP_SECRET_KEY is not set" in refused.value.message
    assert "the same on every host" in refused.value.hint
    assert not (tmp_path / "secret_key").exists()
    # Commands that never encrypt or sign (db upgrade, audit verify) still run without it.
    assert load_settings({"SMART_APP_DATA_DIR": str(tmp_path)}, need_secret=False).secret_key == ""


def test_forwarded_addresses_are_trusted_only_from_named_proxies(tmp_path: Path) -> None:
    base = {"SMART_APP_DATA_DIR": str(tmp_path), "SMART_APP_SECRET_KEY": "k" * 40}
    assert load_settings(base).forwarded_allow_ips == ()
    named = load_settings({**base, "SMART_APP_FORWARDED_ALLOW_IPS": "10.0.0.5, 10.1.0.0/16"})
    assert named.forwarded_allow_ips == ("10.0.0.5", "10.1.0.0/16")
    for bad in ("*", "proxy.example.org"):
        with pytest.raises(ConfigError, match="FORWARDED_ALLOW_IPS"):
            load_settings({**base, "SMART_APP_FORWARDED_ALLOW_IPS": bad})


def test_settings_read_the_environment(tmp_path: Path) -> None:
    env = {"SMART_APP_DATA_DIR": str(tmp_path), "SMART_APP_BASE_URL": "https://app.example.org/",
           "SMART_APP_DATABASE_URL": "postgresql://db/app", "SMART_APP_SECRET_KEY": "k" * 40}
    settings = load_settings(env)
    assert settings.base_url == "https://app.example.org"
    assert settings.database_url == "postgresql://db/app"
    assert settings.secret_key == "k" * 40


@pytest.mark.parametrize(("env", "fragment"), [
    ({"SMART_APP_BASE_URL": "app.example.org", "SMART_APP_SECRET_KEY": "k" * 40}, "must start with http"),
    ({"SMART_APP_SECRET_KEY": "short"}, "too short"),
])
def test_bad_settings_say_what_to_fix(tmp_path: Path, env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_settings({"SMART_APP_DATA_DIR": str(tmp_path), **env})


def test_packaged_sandbox_organization_loads() -> None:
    orgs = {o.id: o for o in load_directory()}
    sandbox = orgs["sandbox"]
    assert sandbox.issuer.endswith("/fhir")
    assert sandbox.client_auth in ("public", "private_key_jwt")
    assert sandbox.timezone == "America/New_York"


@pytest.mark.parametrize(("text", "fragment"), [
    ('id = "a"\nname = "A"\nclient_id = "c"\n', "missing issuer"),
    ('id = "a"\nname = "A"\nissuer = "ehr.example"\nclient_id = "c"\n', "not an http"),
    ('id = "a"\nname = "A"\nissuer = "https://e/fhir"\nclient_id = "c"\ntimezone = "Mars/Base"\n',
     "unknown timezone"),
    ('id = "a"\nname = "A"\nissuer = "https://e/fhir"\nclient_id = "c"\nclient_auth = "secret"\n',
     "not supported"),
    ('id = "a\n', "cannot read organization file"),
])
def test_broken_organization_file_names_the_file_and_the_problem(
        tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "clinic.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_organization_file(path)
    assert str(path) in raised.value.message
    assert fragment in raised.value.message


def test_two_files_may_share_an_issuer_but_not_an_id(tmp_path: Path) -> None:
    # Two clinics on one EHR: each is launched from its own URL (/launch/<id>).
    body = 'name = "A"\nissuer = "https://e/fhir"\nclient_id = "c"\n'
    (tmp_path / "a.toml").write_text('id = "a"\n' + body)
    (tmp_path / "b.toml").write_text('id = "b"\n' + body)
    assert [o.id for o in load_directory(tmp_path)] == ["a", "b"]
    (tmp_path / "c.toml").write_text('id = "a"\n' + body.replace("https://e/fhir", "https://other/fhir"))
    with pytest.raises(ConfigError, match="share the id 'a'"):
        load_directory(tmp_path)


def test_chart_link_names_the_patient_in_the_ehrs_address_or_is_refused(tmp_path: Path) -> None:
    from smart_app.launch.organizations import chart_address, parse_organization

    base = {"id": "o", "name": "O", "issuer": "https://ehr.example.org/fhir", "client_id": "c"}
    assert chart_address(parse_organization(base, "o.toml"), "p1") is None
    org = parse_organization({**base, "chart_link": "https://ehr.example.org/chart/{patient_id}"}, "o.toml")
    # The id is quoted: a patient id cannot reach into the EHR's path or query.
    assert chart_address(org, "a/b?c") == "https://ehr.example.org/chart/a%2Fb%3Fc"
    for bad in ("https://ehr.example.org/chart", "javascript:alert(1)//{patient_id}"):
        with pytest.raises(ConfigError, match="chart_link"):
            parse_organization({**base, "chart_link": bad}, "o.toml")


def test_two_workers_saving_a_new_organization_at_once_both_start(sessions) -> None:
    """Every `serve --workers N` worker saves the organization files as it starts: the second must not stop on a
    duplicate key while the first has inserted the row but not yet committed (as seen with two workers)."""
    import threading

    from smart_app.launch.organizations import Organization, get_organization, save_organizations

    org = Organization(id="org-race", name="Clinic", issuer="http://127.0.0.1:9/fhir", client_id="app")
    first = sessions()
    first.begin()
    save_organizations(first, [org])
    failures: list[BaseException] = []

    def second() -> None:
        try:
            with sessions() as db, db.begin():
                save_organizations(db, [org])
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    worker = threading.Thread(target=second)
    worker.start()
    worker.join(0.5)  # the second waits on the first's uncommitted row
    first.commit()
    first.close()
    worker.join(30)
    assert not worker.is_alive() and failures == []
    with sessions() as db:
        saved = get_organization(db, "org-race")
        assert saved is not None and saved.name == "Clinic"

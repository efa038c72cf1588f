"""The `smart-app` command: every subcommand explains itself, and `db upgrade` works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SUBCOMMANDS = [[], ["demo"], ["serve"], ["purge"], ["sandbox"], ["db"], ["db", "upgrade"], ["keys"],
               ["keys", "generate"], ["org", "add"], ["org", "list"], ["org", "check"], ["rules", "check"],
               ["rules", "evaluate"], ["rules", "import-rvu"], ["audit", "verify"], ["audit", "baseline"], ["rollup"],
               ["superbill"], ["export"], ["outbox", "run"], ["outbox", "status"], ["keys", "rotate"], ["keys", "list"],
               ["users", "grant"], ["users", "revoke"], ["users", "list"]]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smart_app.cli", *args], capture_output=True,
                          text=True, env=env, timeout=60)


@pytest.mark.parametrize("words", SUBCOMMANDS, ids=lambda w: " ".join(w) or "top")
def test_every_command_has_help(words: list[str]) -> None:
    result = run_cli(*words, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: smart-app" in result.stdout
    assert len(result.stdout.splitlines()) > 3


def test_top_level_help_lists_the_commands() -> None:
    out = run_cli("--help").stdout
    for name in ("demo", "serve", "sandbox", "db"):
        assert name in out


def test_db_upgrade_then_serve_check(tmp_path: Path) -> None:
    env = {"SMART_APP_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = run_cli("db", "upgrade", env=env)
    assert result.returncode == 0, result.stderr
    assert "Database is at migration" in result.stdout
    assert (tmp_path / "smart_app.db").exists()


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    env = {"SMART_APP_DATA_DIR": str(tmp_path), "SMART_APP_SECRET_KEY": "k" * 40, "PATH": "/usr/bin:/bin"}
    result = run_cli("serve", "--port", "1", env=env)
    assert result.returncode == 2
    assert "smart-app db upgrade" in result.stderr


def test_keys_generate_then_rotate_keeps_both_published(tmp_path: Path) -> None:
    env = {"SMART_APP_DATA_DIR": str(tmp_path), "SMART_APP_SECRET_KEY": "k" * 40, "PATH": "/usr/bin:/bin"}
    assert run_cli("db", "upgrade", env=env).returncode == 0
    first = run_cli("keys", "generate", "--alg", "ES384", env=env)
    assert first.returncode == 0, first.stderr
    assert "Generated ES384 key" in first.stdout
    rotated = run_cli("keys", "rotate", env=env)
    assert rotated.returncode == 0, rotated.stderr
    lines = [line for line in rotated.stdout.splitlines() if "\t" in line]
    assert len(lines) == 2
    assert sum("current" in line for line in lines) == 1
    assert sum("retired, published until" in line for line in lines) == 1


def test_org_add_list_and_check_against_the_sandbox(tmp_path: Path) -> None:
    from smart_app.paths import data_path
    from smart_app.sandbox import SandboxConfig, create_app
    from tests.live_server import serve

    launch_dir = tmp_path / "launch"
    launch_dir.mkdir()
    env = {"SMART_APP_DATA_DIR": str(tmp_path), "SMART_APP_LAUNCH_DIR": str(launch_dir), "PATH": "/usr/bin:/bin"}
    assert run_cli("db", "upgrade", env=env).returncode == 0
    with serve(lambda base: create_app(SandboxConfig(base_url=base, fixtures_dir=data_path("fixtures"),
                                                     profile="epic-like"))) as base:
        org_file = tmp_path / "clinic.toml"
        org_file.write_text(f'id = "clinic"\nname = "Clinic"\nissuer = "{base}/fhir"\nclient_id = "app"\n'
                            'client_auth = "public"\n')
        added = run_cli("org", "add", str(org_file), env=env)
        assert added.returncode == 0, added.stderr
        assert (launch_dir / "clinic.toml").exists()
        assert "Launch URL to register with the EHR: http://localhost:8000/launch/clinic" in added.stdout
        listed = run_cli("org", "list", env=env)
        assert "clinic\tClinic" in listed.stdout and "database and file" in listed.stdout
        checked = run_cli("org", "check", "clinic", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "[ok ] PKCE with S256" in checked.stdout
    assert "Ready to launch." in checked.stdout
    # The epic-like EHR takes no Claim from apps: the plan says where claims go instead.
    assert "Write-back plan" in checked.stdout
    assert "Claims:" in checked.stdout and "not sent" in checked.stdout


def test_org_add_refuses_a_mistyped_locality_and_installs_nothing(tmp_path: Path) -> None:
    launch_dir = tmp_path / "launch"
    launch_dir.mkdir()
    env = {"SMART_APP_DATA_DIR": str(tmp_path), "SMART_APP_LAUNCH_DIR": str(launch_dir), "PATH": "/usr/bin:/bin"}
    assert run_cli("db", "upgrade", env=env).returncode == 0
    org_file = tmp_path / "clinic.toml"
    org_file.write_text('id = "clinic"\nname = "Clinic"\nissuer = "https://ehr.example.org/fhir"\nclient_id = "app"\n'
                        '[medicare_rates]\nlocality = "Rest of Pennsylvania"\nwork_gpci = 1.0\npe_gpci = 0.95\n')
    added = run_cli("org", "add", str(org_file), env=env)
    assert added.returncode == 2
    assert "[medicare_rates] lacks mp_gpci" in added.stderr and "all three GPCIs" in added.stderr
    assert not (launch_dir / "clinic.toml").exists()


def test_org_check_of_an_unknown_organization_says_how_to_list(tmp_path: Path) -> None:
    env = {"SMART_APP_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    assert run_cli("db", "upgrade", env=env).returncode == 0
    result = run_cli("org", "check", "nowhere", env=env)
    assert result.returncode == 2
    assert "smart-app org list" in result.stderr


def test_purge_deletes_what_has_expired_and_says_how_much(tmp_path: Path) -> None:
    env = {"SMART_APP_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    assert run_cli("db", "upgrade", env=env).returncode == 0
    purged = run_cli("purge", env=env)
    assert purged.returncode == 0, purged.stderr
    assert purged.stdout.startswith("Deleted 0 expired pending launch(es), 0 ended session(s)")

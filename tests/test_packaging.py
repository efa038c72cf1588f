"""A non-editable install carries the templates, rules, launch files and fixtures it needs."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_carries_the_data_folders_and_finds_them(tmp_path: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    wheel = next((tmp_path / "dist").glob("smart_app-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for expected in ("smart_app/_data/templates/patient.html", "smart_app/_data/launch/sandbox.toml",
                     "smart_app/_data/fixtures/ccm-two-chronic.json",
                     "smart_app/migrations/versions/0001_launch.py"):
        assert expected in names
    assert any(n.startswith("smart_app/_data/rules/") for n in names)

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = ("from smart_app.paths import data_path; import smart_app; "
             "print(smart_app.__file__); print(data_path('templates')); print(data_path('fixtures'))")
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=tmp_path, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    module, templates, fixtures = result.stdout.split()
    assert module.startswith(str(site))
    assert Path(templates) == site / "smart_app" / "_data" / "templates"
    assert (Path(fixtures) / "organization.json").exists()

"""Settings read from `SMART_APP_*` environment variables, with safe defaults for the demo."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from smart_app.errors import ConfigError

PREFIX = "SMART_APP_"


def default_data_dir() -> Path:
    """The demo's data folder: `$XDG_DATA_HOME/smart-app` or `~/.local/share/smart-app`."""
    root = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(root) / "smart-app"


@dataclass(frozen=True)
class Settings:
    """Everything the app needs to run; built once at start-up and passed down."""

    data_dir: Path
    database_url: str
    base_url: str
    secret_key: str
    launch_dir: Path | None = None
    session_minutes: int = 12 * 60
    # Per-client and per-session request limits (docs/security.md); "off" only for load tests.
    rate_limits: bool = True
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def redirect_uri(self) -> str:
        """The OAuth redirect URI registered with every EHR."""
        return f"{self.base_url}/callback"

    @property
    def launch_url(self) -> str:
        """The SMART launch URL registered with every EHR."""
        return f"{self.base_url}/launch"


def _secret_from_data_dir(data_dir: Path) -> str:
    """Keep a generated secret in the data folder so sessions survive a demo restart."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


def load_settings(env: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from the environment (or `env`), then apply keyword overrides."""
    env = dict(os.environ if env is None else env)
    data_dir = Path(str(overrides.pop("data_dir", None) or env.get(f"{PREFIX}DATA_DIR")
                        or default_data_dir())).expanduser()
    database_url = str(overrides.pop("database_url", None) or env.get(f"{PREFIX}DATABASE_URL")
                       or f"sqlite:///{data_dir / 'smart_app.db'}")
    base_url = str(overrides.pop("base_url", None) or env.get(f"{PREFIX}BASE_URL")
                   or "http://localhost:8000").rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"{PREFIX}BASE_URL must start with http:// or https://, got {base_url!r}.",
                          "Set it to the address browsers use to reach the app.")
    secret_key = str(overrides.pop("secret_key", None) or env.get(f"{PREFIX}SECRET_KEY")
                     or _secret_from_data_dir(data_dir))
    if len(secret_key) < 32:
        raise ConfigError(f"{PREFIX}SECRET_KEY is too short ({len(secret_key)} characters).",
                          "Use at least 32 random characters.")
    launch_dir = overrides.pop("launch_dir", None) or env.get(f"{PREFIX}LAUNCH_DIR")
    limits = overrides.pop("rate_limits", None)
    rate_limits = bool(limits) if limits is not None else env.get(f"{PREFIX}RATE_LIMITS", "on").lower() != "off"
    if overrides:
        raise TypeError(f"unknown settings: {sorted(overrides)}")
    return Settings(data_dir=data_dir, database_url=database_url, base_url=base_url,
                    secret_key=secret_key, launch_dir=Path(launch_dir) if launch_dir else None,
                    rate_limits=rate_limits)

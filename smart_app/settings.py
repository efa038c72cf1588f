"""Settings read from `SMART_APP_*` environment variables, with safe defaults for the demo."""

from __future__ import annotations

import ipaddress
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
    # Limits that replace the defaults for some path prefixes: ((prefix, requests, window seconds), ...).
    rate_limit_overrides: tuple[tuple[str, int, int], ...] = ()
    # Proxies whose X-Forwarded-For / -Proto `serve` believes (addresses or networks); none unless named.
    forwarded_allow_ips: tuple[str, ...] = ()
    # "text" (default) or "json": one JSON object a line, for log collectors (docs/operations.md).
    log_format: str = "text"
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


def load_settings(env: dict[str, str] | None = None, *, generate_secret: bool = False, need_secret: bool = True,
                  **overrides: object) -> Settings:
    """Build settings from the environment (or `env`), then apply keyword overrides.

    Without `SMART_APP_SECRET_KEY` this refuses (ConfigError saying how to set it), unless `generate_secret` (the
    demo only: one is made and kept in the data folder) or not `need_secret` (commands that never encrypt,
    decrypt or sign: `secret_key` is then "").
    """
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
    secret_key = str(overrides.pop("secret_key", None) or env.get(f"{PREFIX}SECRET_KEY") or "")
    if not secret_key and generate_secret:
        secret_key = _secret_from_data_dir(data_dir)
    elif not secret_key and need_secret:
        # A key made up per host would differ between hosts sharing the database: sessions, tokens and signing
        # keys sealed by one could not be opened by the other.
        raise ConfigError(f"{PREFIX}SECRET_KEY is not set; the app will not start without it.",
                          f"Set {PREFIX}SECRET_KEY to at least 32 random characters, the same on every host that "
                          "shares the database, from your platform's secret store; for example "
                          "`export SMART_APP_SECRET_KEY=\"$(python3 -c 'import secrets; "
                          "print(secrets.token_urlsafe(48))')\"`. Only `smart-app demo` makes one up.")
    if secret_key and len(secret_key) < 32:
        raise ConfigError(f"{PREFIX}SECRET_KEY is too short ({len(secret_key)} characters).",
                          "Use at least 32 random characters.")
    launch_dir = overrides.pop("launch_dir", None) or env.get(f"{PREFIX}LAUNCH_DIR")
    limits = overrides.pop("rate_limits", None)
    limits_text = env.get(f"{PREFIX}RATE_LIMITS", "on").strip()
    rate_limits = bool(limits) if limits is not None else limits_text.lower() != "off"
    rate_limit_overrides = () if limits_text.lower() in ("on", "off") else parse_rate_limits(limits_text)
    forwarded = overrides.pop("forwarded_allow_ips", None)
    forwarded_allow_ips = (tuple(str(ip) for ip in forwarded) if isinstance(forwarded, list | tuple)
                           else parse_forwarded_allow_ips(env.get(f"{PREFIX}FORWARDED_ALLOW_IPS", "")))
    log_format = str(overrides.pop("log_format", None) or env.get(f"{PREFIX}LOG_FORMAT") or "text").lower()
    if log_format not in ("text", "json"):
        raise ConfigError(f"{PREFIX}LOG_FORMAT is {log_format!r}.", "Set it to text (the default) or json.")
    if overrides:
        raise TypeError(f"unknown settings: {sorted(overrides)}")
    return Settings(data_dir=data_dir, database_url=database_url, base_url=base_url,
                    secret_key=secret_key, launch_dir=Path(str(launch_dir)) if launch_dir else None,
                    rate_limits=rate_limits, rate_limit_overrides=rate_limit_overrides,
                    forwarded_allow_ips=forwarded_allow_ips, log_format=log_format)


def parse_forwarded_allow_ips(text: str) -> tuple[str, ...]:
    """`10.0.0.5,10.1.0.0/16` (the proxies in front of the app) as a tuple; "" names none."""
    found = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part == "*":
            raise ConfigError(f"{PREFIX}FORWARDED_ALLOW_IPS=* would let any client name its own address.",
                              "List the addresses (or networks) of the proxies in front of the app.")
        try:
            ipaddress.ip_network(part, strict=False)
        except ValueError as exc:
            raise ConfigError(f"{PREFIX}FORWARDED_ALLOW_IPS has {part!r}, which is not an address or a network.",
                              "List proxy addresses or networks separated by commas, e.g. 10.0.0.5,10.1.0.0/16.") \
                from exc
        found.append(part)
    return tuple(found)


def parse_rate_limits(text: str) -> tuple[tuple[str, int, int], ...]:
    """`/launch=120/60,/api/=600/60` (prefix=requests/seconds, comma-separated) as override tuples."""
    found = []
    for part in (p.strip() for p in text.split(",")):
        prefix, _, rule = part.partition("=")
        limit, _, window = rule.partition("/")
        if not (prefix.startswith("/") and limit.strip().isdigit() and window.strip().isdigit()
                and int(limit) >= 1 and int(window) >= 1):
            raise ConfigError(f"{PREFIX}RATE_LIMITS has an unreadable limit {part!r}.",
                              "Use on, off, or prefix=requests/seconds pairs separated by commas, "
                              "e.g. /launch=120/60,/callback=120/60.")
        found.append((prefix.strip(), int(limit), int(window)))
    return tuple(found)

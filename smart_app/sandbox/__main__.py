"""Run the sandbox EHR on its own: `python -m smart_app.sandbox --port 9000`."""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from smart_app.paths import data_path
from smart_app.sandbox import SandboxClient, SandboxConfig, create_app
from smart_app.sandbox.profiles import PROFILES


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve the sandbox until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m smart_app.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--fixtures", type=Path, default=data_path("fixtures"))
    parser.add_argument("--database", default=None, help="SQLite file; default in memory")
    parser.add_argument("--app-launch-url", default="")
    parser.add_argument("--client-id", default="", help="register a public client with this id")
    parser.add_argument("--redirect-uri", action="append", default=[])
    parser.add_argument("--open", action="store_true", help="serve FHIR without authorization")
    parser.add_argument("--profile", choices=list(PROFILES), default="open",
                        help="EHR profile: which FHIR interactions are offered (default open; "
                             "unrelated to --open, which drops authorization)")
    args = parser.parse_args(argv)
    clients = [SandboxClient(args.client_id, args.redirect_uri)] if args.client_id else []
    config = SandboxConfig(base_url=f"http://{args.host}:{args.port}",
                           fixtures_dir=args.fixtures, database=args.database,
                           clients=clients, app_launch_url=args.app_launch_url, open=args.open,
                           profile=args.profile)
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()

"""The web room: Starlette routes, sessions, error pages and templates."""

"""Moved to `smart_app.services`; kept while in-flight work still imports it from here."""

from smart_app.services import AppContext, build_context

__all__ = ["AppContext", "build_context"]

"""The dashboard: one static page and its ES modules (docs/design.md, "Dashboard"); it talks only to /api."""

from app.dashboard.routes import dashboard_handlers

__all__ = ["dashboard_handlers"]

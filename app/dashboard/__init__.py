"""The dashboard: one static page and its ES modules (DESIGN.md section 8); it talks only to /api."""

from app.dashboard.routes import dashboard_handlers

__all__ = ["dashboard_handlers"]

"""The page and its files alone, no database: for the tests of the live client against a scripted socket."""

from __future__ import annotations

from litestar import Litestar

from app.dashboard import dashboard_handlers


def create_dashboard_only_app() -> Litestar:
    return Litestar(route_handlers=dashboard_handlers())

"""/api/health and /metrics tell which PostgreSQL the app runs on (and whether it has the NOTIFY fixes)."""

from __future__ import annotations

import dataclasses

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.settings import Settings


async def server_version_num(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SHOW server_version_num"))
    finally:
        await conn.close()


async def test_health_reports_the_servers_version(
    client: AsyncTestClient[Litestar], database_url: str
) -> None:
    """The database check names the release the test server runs, and no warning for a fixed one."""
    number = await server_version_num(database_url)
    response = await client.get("/api/health")
    assert response.status_code == 200
    database = response.json()["database"]
    assert database == {
        "ok": True,
        "server_version": f"{number // 10000}.{number % 10000}",
        "server_version_num": number,
        "warning": None,
    }


async def test_metrics_report_the_servers_version(settings: Settings, database_url: str) -> None:
    """/metrics has the server_version_num gauge, labelled with the version, and a 0 warning gauge."""
    number = await server_version_num(database_url)
    app = create_app(dataclasses.replace(settings, metrics_token="scrape-me"))
    async with AsyncTestClient(app=app) as client:
        body = (await client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})).text
    version = f"{number // 10000}.{number % 10000}"
    assert f'bookmarks_postgres_server_version_num{{version="{version}"}} {float(number)}' in body
    assert "bookmarks_postgres_version_warning 0.0" in body

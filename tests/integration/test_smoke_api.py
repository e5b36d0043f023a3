"""A first end-to-end pass through the HTTP API on a real database."""

from __future__ import annotations

import dataclasses

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.settings import Settings
from testkit.accounts import Account


async def test_import_creates_pending_videos_and_a_queued_job(
    client: AsyncTestClient[Litestar], alice: Account
) -> None:
    """A pasted list of links becomes pending videos and one queued job, with duplicates counted."""
    created = await client.post("/api/lists", json={"name": "Music"}, headers=alice.headers)
    assert created.status_code == 201, created.text
    list_id = created.json()["id"]
    body = (
        "https://youtu.be/dQw4w9WgXcQ\nhttps://www.youtube.com/watch?v=dQw4w9WgXcQ\nnot a link\n9bZkp7q19f0\n"
    )
    response = await client.post(
        f"/api/lists/{list_id}/imports", content=body, headers={**alice.headers, "Content-Type": "text/plain"}
    )
    assert response.status_code == 202, response.text
    result = response.json()
    assert (result["accepted"], result["duplicates"], len(result["invalid"])) == (2, 1, 1)
    assert result["job"]["status"] == "queued"
    assert result["job"]["total"] == 2


async def test_an_import_of_many_thousand_rows_is_one_statement(
    client: AsyncTestClient[Litestar], alice: Account
) -> None:
    """6,000 new videos go in at once (a VALUES list would exceed Postgres's 32,767 bind parameters)."""
    created = await client.post("/api/lists", json={"name": "Big"}, headers=alice.headers)
    list_id = created.json()["id"]
    body = "\n".join(f"https://youtu.be/{index:011d}" for index in range(6000))
    response = await client.post(
        f"/api/lists/{list_id}/imports", content=body, headers={**alice.headers, "Content-Type": "text/plain"}
    )
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 6000
    listed = await client.get(f"/api/lists/{list_id}", headers=alice.headers)
    assert listed.json()["video_count"] == 6000


@pytest.mark.parametrize(("api_key", "source"), [(None, "oembed"), ("a-key", "youtube_data_api")])
async def test_me_says_where_the_metadata_comes_from(
    settings: Settings, alice: Account, api_key: str | None, source: str
) -> None:
    """/api/me tells the dashboard whether durations and dates will come (Data API) or not (oEmbed)."""
    app = create_app(dataclasses.replace(settings, youtube_api_key=api_key))
    async with AsyncTestClient(app=app) as client:
        me = (await client.get("/api/me", headers=alice.headers)).json()
    assert (me["email"], me["metadata_source"]) == ("alice@example.com", source)

"""Videos of a list over HTTP: browse with filters, add one by URL, delete, export as CSV."""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any

import httpx
from litestar.testing import transport as litestar_transport
from sqlalchemy import text

from db.models import VideoStatus
from testkit.accounts import Account
from tests.integration.api.helpers import (
    Client,
    Sessions,
    count_rows,
    create_list,
    fetch_all,
    import_ids,
    insert_videos,
)
from workers.queue import PROCESS_JOB

WAIT_S = 10.0


async def list_videos(client: Client, account: Account, list_id: str, query: str = "") -> dict[str, Any]:
    response = await client.get(f"/api/lists/{list_id}/videos?{query}", headers=account.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def titles(page: dict[str, Any]) -> list[str | None]:
    return [item["title"] for item in page["items"]]


async def test_videos_page_in_insertion_order(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """The list's videos come as {items,total,limit,offset}, oldest first, sliced by limit and offset."""
    music = await create_list(client, alice)
    rows = [(f"vid0000000{n}", f"Song {n}") for n in range(5)]
    for row in rows:  # one insert each, so created_at orders them
        await insert_videos(session_maker, alice, music["id"], [row])
    page = await list_videos(client, alice, music["id"], "limit=2&offset=1")
    assert (titles(page), page["total"], page["limit"], page["offset"]) == (["Song 1", "Song 2"], 5, 2, 1)
    item = page["items"][0]
    assert (item["youtube_id"], item["url"], item["status"], item["list_id"]) == (
        "vid00000001",
        "https://www.youtube.com/watch?v=vid00000001",
        "ready",
        music["id"],
    )
    for query in ("limit=0", "limit=1001", "offset=-1", "status=unknown"):
        response = await client.get(f"/api/lists/{music['id']}/videos?{query}", headers=alice.headers)
        assert response.status_code == 400, (query, response.text)


async def test_status_filter_returns_only_that_status(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """`?status=` keeps only the videos in that status, and the total counts only those."""
    music = await create_list(client, alice)
    await insert_videos(session_maker, alice, music["id"], [("vid00000001", "Ready one")])
    await insert_videos(
        session_maker, alice, music["id"], [("vid00000002", None), ("vid00000003", None)], VideoStatus.FAILED
    )
    await import_ids(client, alice, music["id"], ["vid00000004"])
    expected = {
        "ready": ["vid00000001"],
        "failed": ["vid00000002", "vid00000003"],
        "pending": ["vid00000004"],
    }
    for status, ids in expected.items():
        page = await list_videos(client, alice, music["id"], f"status={status}")
        assert (sorted(i["youtube_id"] for i in page["items"]), page["total"]) == (ids, len(ids)), status
        assert {i["status"] for i in page["items"]} == {status}
    assert (await list_videos(client, alice, music["id"], "status=cancelled"))["total"] == 0


async def test_search_matches_title_channel_or_exact_id(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """`?q=` matches titles and channel names case-insensitively, or exactly one video id."""
    music = await create_list(client, alice)
    await insert_videos(
        session_maker,
        alice,
        music["id"],
        [("vid00000001", "Never Gonna Give You Up"), ("vid00000002", "Gangnam Style")],
    )
    await insert_videos(
        session_maker, alice, music["id"], [("vid00000003", "Me at the zoo")], channel_title="jawed GONNA"
    )
    cases = {
        "gonna": ["Never Gonna Give You Up", "Me at the zoo"],
        "STYLE": ["Gangnam Style"],
        "vid00000002": ["Gangnam Style"],
        "vid0000000": [],
        "nothing like it": [],
    }
    for query, expected in cases.items():
        page = await list_videos(client, alice, music["id"], f"q={query}")
        assert (titles(page), page["total"]) == (expected, len(expected)), query


async def test_search_treats_like_wildcards_literally(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """`%` and `_` in `q` match themselves, not any text."""
    music = await create_list(client, alice)
    await insert_videos(
        session_maker,
        alice,
        music["id"],
        [("vid00000001", "100% pure"), ("vid00000002", "1000 pure"), ("vid00000003", "snake_case talk")],
    )
    assert titles(await list_videos(client, alice, music["id"], "q=100%25")) == ["100% pure"]
    assert titles(await list_videos(client, alice, music["id"], "q=e_c")) == ["snake_case talk"]
    assert titles(await list_videos(client, alice, music["id"], "q=%25")) == ["100% pure"]


async def test_add_video_creates_a_pending_video_with_a_queued_job(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """Adding a URL answers 201 pending with a job_id; the job row is queued with total 1 and SAQ has it."""
    music = await create_list(client, alice)
    response = await client.post(
        f"/api/lists/{music['id']}/videos",
        json={"url": "https://youtu.be/dQw4w9WgXcQ?si=share"},
        headers=alice.headers,
    )
    assert response.status_code == 201, response.text
    video = response.json()
    assert (video["youtube_id"], video["status"], video["list_id"]) == ("dQw4w9WgXcQ", "pending", music["id"])
    assert video["job_id"] is not None
    jobs = await fetch_all(session_maker, "SELECT status, total, kind, list_id::text FROM jobs")
    assert jobs == [{"status": "queued", "total": 1, "kind": "add", "list_id": music["id"]}]
    saq = await fetch_all(session_maker, "SELECT key, status, job FROM saq_jobs")
    assert [(row["key"], row["status"]) for row in saq] == [(video["job_id"], "queued")]
    assert PROCESS_JOB.encode() in bytes(saq[0]["job"])


async def test_adding_a_video_twice_is_409(client: Client, alice: Account, session_maker: Sessions) -> None:
    """A second add of the same video (in any URL form) is a 409 naming the existing video; nothing new."""
    music = await create_list(client, alice)
    first = await client.post(
        f"/api/lists/{music['id']}/videos", json={"url": "dQw4w9WgXcQ"}, headers=alice.headers
    )
    assert first.status_code == 201
    before = await count_rows(session_maker)
    again = await client.post(
        f"/api/lists/{music['id']}/videos",
        json={"url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=3"},
        headers=alice.headers,
    )
    assert again.status_code == 409, again.text
    assert again.json()["extra"] == {"video_id": first.json()["id"]}
    assert await count_rows(session_maker) == before


async def test_the_same_video_may_be_in_two_lists(client: Client, alice: Account) -> None:
    """Uniqueness is per list: the same video goes into another list."""
    music = await create_list(client, alice, "Music")
    other = await create_list(client, alice, "Other")
    for target in (music, other):
        response = await client.post(
            f"/api/lists/{target['id']}/videos", json={"url": "dQw4w9WgXcQ"}, headers=alice.headers
        )
        assert response.status_code == 201, response.text


async def test_unusable_urls_are_422_and_write_nothing(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """A playlist, channel, other host or bad id is a 422 with a reason; an invalid body is a 400."""
    music = await create_list(client, alice)
    before = await count_rows(session_maker)
    rejected = {
        "https://www.youtube.com/playlist?list=PLFgquLnL59alCl_2TQvOiD5Vgm1hCaGSI": "playlist",
        "https://www.youtube.com/channel/UCuAXFkgsw1L7xaCfnd5JJOw": "channel",
        "https://vimeo.com/76979871": "",
        "https://youtu.be/tooShort": "",
    }
    for url, reason in rejected.items():
        response = await client.post(
            f"/api/lists/{music['id']}/videos", json={"url": url}, headers=alice.headers
        )
        assert response.status_code == 422, (url, response.text)
        body = response.json()
        assert body["status_code"] == 422
        assert reason in body["detail"], (url, body)
    for bad in ({"url": ""}, {}, {"url": "dQw4w9WgXcQ", "title": "x"}):
        response = await client.post(f"/api/lists/{music['id']}/videos", json=bad, headers=alice.headers)
        assert response.status_code == 400, (bad, response.text)
    assert await count_rows(session_maker) == before


async def test_delete_video_removes_it_and_recounts_its_job(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """DELETE /api/videos/{id} answers 204; the video is gone and its queued job's total shrinks."""
    music = await create_list(client, alice)
    result = await import_ids(client, alice, music["id"], ["vid00000001", "vid00000002", "vid00000003"])
    page = await list_videos(client, alice, music["id"])
    doomed = page["items"][0]["id"]
    response = await client.delete(f"/api/videos/{doomed}", headers=alice.headers)
    assert response.status_code == 204, response.text
    remaining = await list_videos(client, alice, music["id"])
    assert [i["youtube_id"] for i in remaining["items"]] == ["vid00000002", "vid00000003"]
    job = (await client.get(f"/api/jobs/{result['job']['id']}", headers=alice.headers)).json()
    assert (job["status"], job["total"]) == ("queued", 2)
    again = await client.delete(f"/api/videos/{doomed}", headers=alice.headers)
    assert again.status_code == 404


async def test_videos_of_an_unknown_list_are_404(client: Client, alice: Account) -> None:
    """Browsing, adding to or exporting a list that does not exist is a 404."""
    missing = "01a226b6-0000-7000-8000-000000000000"
    for method, path, body in (
        ("GET", f"/api/lists/{missing}/videos", None),
        ("POST", f"/api/lists/{missing}/videos", {"url": "dQw4w9WgXcQ"}),
        ("GET", f"/api/lists/{missing}/export.csv", None),
        ("DELETE", f"/api/videos/{missing}", None),
    ):
        response = await client.request(method, path, headers=alice.headers, json=body)
        assert response.status_code == 404, (method, path, response.text)


def parse_csv(body: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body, newline="")))


async def test_export_has_a_header_and_one_row_per_video(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """The CSV export is an attachment: the column header, then one row per video, oldest first."""
    music = await create_list(client, alice)
    empty = await client.get(f"/api/lists/{music['id']}/export.csv", headers=alice.headers)
    assert [row[0] for row in parse_csv(empty.text)] == ["youtube_id"]
    await insert_videos(session_maker, alice, music["id"], [("vid00000001", "First, with a comma")])
    await import_ids(client, alice, music["id"], ["vid00000002"])
    response = await client.get(f"/api/lists/{music['id']}/export.csv", headers=alice.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = parse_csv(response.text)
    assert rows[0][:4] == ["youtube_id", "url", "status", "title"]
    assert [row[:4] for row in rows[1:]] == [
        ["vid00000001", "https://www.youtube.com/watch?v=vid00000001", "ready", "First, with a comma"],
        ["vid00000002", "https://www.youtube.com/watch?v=vid00000002", "pending", ""],
    ]
    assert all(len(row) == len(rows[0]) for row in rows)


async def test_export_neutralises_spreadsheet_formulas(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """Cells starting with =, +, -, @ are exported prefixed with ' so a spreadsheet shows them as text."""
    music = await create_list(client, alice)
    dangerous = ['=HYPERLINK("http://evil")', "+1+1", "-2+3", "@SUM(A1:A2)"]
    await insert_videos(
        session_maker,
        alice,
        music["id"],
        [(f"vid0000000{n}", title) for n, title in enumerate(dangerous)],
        channel_title="=cmd|' /C calc'!A0",
    )
    await insert_videos(session_maker, alice, music["id"], [("vid00000009", "Harmless = title")])
    rows = parse_csv((await client.get(f"/api/lists/{music['id']}/export.csv", headers=alice.headers)).text)
    header = rows[0]
    exported = [dict(zip(header, row, strict=True)) for row in rows[1:]]
    assert [row["title"] for row in exported] == [*("'" + t for t in dangerous), "Harmless = title"]
    assert {row["channel_title"] for row in exported[:4]} == {"'=cmd|' /C calc'!A0"}
    for row in exported:
        for column, cell in row.items():
            assert not cell.startswith(("=", "+", "-", "@")), (column, cell)


async def test_export_of_an_id_starting_with_a_dash_stays_importable(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """A video id starting with '-' is neutralised in the id column yet its url column re-imports it."""
    music = await create_list(client, alice)
    await insert_videos(session_maker, alice, music["id"], [("-wtIMTCHWuI", "Dash")])
    exported = (await client.get(f"/api/lists/{music['id']}/export.csv", headers=alice.headers)).text
    assert parse_csv(exported)[1][:2] == ["'-wtIMTCHWuI", "https://www.youtube.com/watch?v=-wtIMTCHWuI"]
    other = await create_list(client, alice, "Copy")
    response = await client.post(
        f"/api/lists/{other['id']}/imports",
        content=exported.encode(),
        headers={**alice.headers, "Content-Type": "text/csv"},
    )
    assert response.status_code == 202, response.text
    assert (response.json()["accepted"], response.json()["invalid"]) == (1, [])
    copied = await list_videos(client, alice, other["id"])
    assert [i["youtube_id"] for i in copied["items"]] == ["-wtIMTCHWuI"]


async def test_export_declares_one_charset(client: Client, alice: Account) -> None:
    """The export's Content-Type is exactly `text/csv; charset=utf-8`."""
    music = await create_list(client, alice)
    response = await client.get(f"/api/lists/{music['id']}/export.csv", headers=alice.headers)
    assert response.headers["content-type"] == "text/csv; charset=utf-8"


async def _wait_for_lock_waiters(sessions: Sessions, count: int) -> None:
    """Until `count` other backends of this database wait on a lock (there is no event to await)."""
    async with asyncio.timeout(WAIT_S), sessions() as session:
        while True:
            waiting = await session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
            )
            await session.rollback()
            if waiting == count:
                return
            await asyncio.sleep(0.02)


async def test_concurrent_adds_of_one_video_answer_201_and_409(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """Two simultaneous adds of the same video: one 201, one 409 (never a 500), and one video row."""
    music = await create_list(client, alice)
    transport = litestar_transport.TestClientTransport(client=client, raise_server_exceptions=False)

    def add() -> httpx.Response:
        request = httpx.Request(
            "POST",
            f"http://testserver.local/api/lists/{music['id']}/videos",
            json={"url": "dQw4w9WgXcQ"},
            headers=alice.headers,
        )
        response = transport.handle_request(request)
        response.read()
        return response

    # Hold the list row so both requests pass their duplicate check, then wait on the job insert's FK lock.
    async with session_maker() as blocker:
        await blocker.execute(
            text("SELECT 1 FROM bookmark_lists WHERE id = :id FOR UPDATE"), {"id": music["id"]}
        )
        requests = asyncio.gather(asyncio.to_thread(add), asyncio.to_thread(add))
        try:
            await _wait_for_lock_waiters(session_maker, 2)
        finally:
            await blocker.rollback()
            async with asyncio.timeout(WAIT_S):
                responses = await requests
    assert sorted(r.status_code for r in responses) == [201, 409], [r.text for r in responses]
    assert (await count_rows(session_maker, ["videos"]))["videos"] == 1

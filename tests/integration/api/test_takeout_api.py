"""`POST /api/imports/takeout`: a whole Google Takeout archive, a list per playlist and a job per list in one
upload; an existing list of the same name is used, never doubled; hostile archives change nothing."""

from __future__ import annotations

import functools
import io
import logging
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from testkit.accounts import Account
from tests.integration.api.helpers import Client, Sessions, count_rows, create_list, fetch_all, post_import

DATA = Path(__file__).parents[2] / "data" / "takeout"
PLAYLISTS = "Takeout/YouTube and YouTube Music/playlists"
EXPECTED = {
    "Watch later": {"dQw4w9WgXcQ", "9bZkp7q19f0", "vid00000101", "vid00000102"},
    "Liked videos": {"jNQXAC9IVRw", "vid00000201", "vid00000202", "dQw4w9WgXcQ"},
    "Road trip": {"vid00000301", "vid00000302", "vid00000303"},
    "Learning / Practice": {"vid00000401", "vid00000402"},
}


async def upload(
    client: Client, account: Account, data: bytes, name: str = "takeout-20240517.zip"
) -> httpx.Response:
    return await client.post(
        "/api/imports/takeout", files={"file": (name, data, "application/zip")}, headers=account.headers
    )


async def lists_with_videos(sessions: Sessions, account: Account) -> dict[str, set[str]]:
    rows = await fetch_all(
        sessions,
        "SELECT l.name, v.youtube_id FROM bookmark_lists AS l LEFT JOIN videos AS v ON v.list_id = l.id "
        "WHERE l.user_id = :user",
        user=account.user_id,
    )
    lists: dict[str, set[str]] = {}
    for row in rows:
        lists.setdefault(row["name"], set()).update([row["youtube_id"]] if row["youtube_id"] else [])
    return lists


@pytest.mark.parametrize(
    "archive", ["takeout_old_layout.zip", "takeout_new_layout.zip", "youtube_folder_only.zip"]
)
async def test_each_layout_makes_a_list_per_playlist_with_a_job_each_under_one_upload(
    client: Client, alice: Account, session_maker: Sessions, archive: str
) -> None:
    """Every playlist (Watch later and Liked videos too) becomes a list named after it, with its videos
    pending under a queued import job; the jobs share the answer's upload_id and the archive's name."""
    response = await upload(client, alice, (DATA / archive).read_bytes())

    assert response.status_code == 202, response.text
    body = response.json()
    assert await lists_with_videos(session_maker, alice) == EXPECTED
    assert {item["name"]: item["accepted"] for item in body["lists"]} == {
        k: len(v) for k, v in EXPECTED.items()
    }
    assert all(item["created"] and item["duplicates"] == 0 for item in body["lists"])
    assert body["source"] == "takeout-20240517.zip"
    jobs = await fetch_all(session_maker, "SELECT id::text, kind, source, upload_id::text, total FROM jobs")
    assert len(jobs) == 4
    assert {(job["kind"], job["source"], job["upload_id"]) for job in jobs} == {
        ("import", "takeout-20240517.zip", body["upload_id"])
    }
    assert {job["id"] for job in jobs} == {item["job"]["id"] for item in body["lists"]}
    assert all(item["job"]["upload_id"] == body["upload_id"] for item in body["lists"])
    saq = await fetch_all(session_maker, "SELECT key FROM saq_jobs WHERE key NOT LIKE 'cron:%'")
    assert {row["key"] for row in saq} == {job["id"] for job in jobs}
    skipped = [item["file"].rsplit("/", 1)[-1] for item in body["skipped"]]
    assert skipped == ([] if archive == "takeout_old_layout.zip" else ["Someday-videos.csv"])


async def test_an_existing_list_of_the_same_name_is_filled_not_doubled(
    client: Client, alice: Account, bob: Account, session_maker: Sessions
) -> None:
    """A list called "Watch later" already there gets the playlist's new videos (one it had counts as a
    duplicate); uploading the same archive again makes no list and no job (200); another user's list of
    that name is not touched."""
    watch_later = await create_list(client, alice, "Watch later")
    assert (await post_import(client, alice, watch_later["id"], "dQw4w9WgXcQ")).status_code == 202
    await create_list(client, bob, "Watch later")
    data = (DATA / "takeout_new_layout.zip").read_bytes()

    first = (await upload(client, alice, data)).json()

    by_name = {item["name"]: item for item in first["lists"]}
    assert (by_name["Watch later"]["list_id"], by_name["Watch later"]["created"]) == (
        watch_later["id"],
        False,
    )
    assert (by_name["Watch later"]["accepted"], by_name["Watch later"]["duplicates"]) == (3, 1)
    assert await lists_with_videos(session_maker, alice) == EXPECTED

    again = await upload(client, alice, data)

    assert again.status_code == 200, again.text
    assert all(item["job"] is None and not item["created"] for item in again.json()["lists"])
    assert await lists_with_videos(session_maker, alice) == EXPECTED
    assert (
        len(await fetch_all(session_maker, "SELECT id FROM bookmark_lists WHERE name = 'Watch later'")) == 2
    )
    assert await lists_with_videos(session_maker, bob) == {"Watch later": set()}


@functools.cache
def hostile_archives() -> dict[str, tuple[bytes, int, str]]:
    """name → (archive, status, a fragment of the reason); built once."""

    def build(members: dict[str, bytes], *, compress: int = zipfile.ZIP_DEFLATED) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=compress) as out:
            for name, content in members.items():
                out.writestr(name, content)
        return buffer.getvalue()

    good = {f"{PLAYLISTS}/Good-videos.csv": b"Video ID\nvid00000001\n"}
    return {
        "zip bomb": (build({**good, f"{PLAYLISTS}/Bomb-videos.csv": b"0" * (30 * 1024 * 1024)}), 422, "zip bomb"),
        "path traversal": (build({**good, "../../etc/playlists/x.csv": b"Video ID\nvid00000002\n"}), 422, "leaves its folder"),
        "nested archive": (build({**good, "Takeout/more.zip": build(good)}), 422, "another archive"),
        "member over the limits": (build({**good, f"{PLAYLISTS}/Big-videos.csv": b"Video ID\n" + "".join(f"vid{n:08d}\n" for n in range(250_000)).encode()}), 422, "over the limit"),
        "not a zip": (b"Video ID\nvid00000001\n", 422, "not a zip archive"),
        "no playlists": (build({"Takeout/Drive/a.txt": b"hi"}), 422, "no YouTube playlist"),
    }  # fmt: skip


@pytest.mark.settings(import_max_bytes=2 * 1024 * 1024)
@pytest.mark.parametrize("kind", list(hostile_archives()))
async def test_a_hostile_archive_is_refused_with_its_reason_and_nothing_written(
    client: Client, alice: Account, session_maker: Sessions, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Zip bomb, path traversal, an archive inside, a playlist over the size limit, not a zip, no playlist:
    refused with a reason that says which, nothing logged as an error, and no table changed."""
    data, status, reason = hostile_archives()[kind]
    before = await count_rows(session_maker)

    response = await upload(client, alice, data)

    assert response.status_code == status, response.text
    assert reason in response.json()["detail"]
    assert await count_rows(session_maker) == before
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


@pytest.mark.settings(import_max_bytes=10_000)
async def test_an_archive_over_the_upload_limit_is_413(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """The zip itself is held to IMPORT_MAX_BYTES like any import."""
    before = await count_rows(session_maker)
    response = await upload(client, alice, (DATA / "takeout_old_layout.zip").read_bytes() + b"\x00" * 20_000)
    assert response.status_code == 413, response.text
    assert await count_rows(session_maker) == before


async def test_a_takeout_sent_to_one_list_says_where_it_belongs(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """Uploading the archive into one list's import is refused with a pointer to the Takeout import."""
    music = await create_list(client, alice)
    before = await count_rows(session_maker)
    response = await post_import(
        client, alice, music["id"], (DATA / "takeout_new_layout.zip").read_bytes(), "application/zip"
    )
    assert response.status_code == 422
    assert "/api/imports/takeout" in response.json()["detail"]
    assert await count_rows(session_maker) == before


async def test_a_raw_zip_body_works_like_a_form(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """`Content-Type: application/zip` with the archive as the body: the same lists (source "Google Takeout")."""
    response = await client.post(
        "/api/imports/takeout",
        content=(DATA / "takeout_old_layout.zip").read_bytes(),
        headers={**alice.headers, "Content-Type": "application/zip"},
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    assert body["source"] == "Google Takeout"
    assert await lists_with_videos(session_maker, alice) == EXPECTED


async def test_a_playlist_with_over_a_thousand_bad_rows_counts_every_one(
    client: Client, alice: Account
) -> None:
    """`invalid` is the count of the playlist's bad rows, not of the reasons an answer lists (at most 1,000)."""
    rows = ["vid00000901,2024-01-10T10:00:00+00:00"] + [
        f"bad{n},2024-01-10T10:00:00+00:00" for n in range(1200)
    ]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr(
            f"{PLAYLISTS}/playlists.csv",
            "Playlist ID,Add new videos to top,Playlist Title (Original)\nPLmany0001,False,Many\n",
        )
        zipped.writestr(
            f"{PLAYLISTS}/Many-videos.csv",
            "Video ID,Playlist Video Creation Timestamp\n" + "\n".join(rows) + "\n",
        )

    response = await upload(client, alice, archive.getvalue())

    assert response.status_code == 202, response.text
    [playlist] = response.json()["lists"]
    assert (playlist["name"], playlist["accepted"], playlist["invalid"]) == ("Many", 1, 1200)

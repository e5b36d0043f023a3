"""`POST /api/lists/{id}/imports`: every input form, exact counts, limits, and all-or-nothing writes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.settings import Settings
from testkit.accounts import Account
from tests.integration.api.helpers import (
    Client,
    Sessions,
    count_rows,
    create_list,
    fetch_all,
    import_ids,
    post_import,
)

DATA = Path(__file__).parents[2] / "data" / "imports"


def counts(result: dict[str, Any]) -> tuple[int, int, list[int]]:
    return result["accepted"], result["duplicates"], [line["line"] for line in result["invalid"]]


@asynccontextmanager
async def client_with(settings: Settings, **changes: Any) -> AsyncIterator[Client]:
    """A client on an app built with some settings changed (the `client` fixture uses the defaults)."""
    async with AsyncTestClient(app=create_app(replace(settings, **changes))) as client:
        yield client


async def test_pasted_text_creates_pending_videos_a_queued_job_and_a_saq_job(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """A text/plain paste answers 202 with exact counts; videos are pending under one queued job SAQ knows."""
    music = await create_list(client, alice)
    response = await post_import(client, alice, music["id"], (DATA / "pasted_list.txt").read_bytes())
    assert response.status_code == 202, response.text
    result = response.json()
    assert counts(result) == (5, 1, [9])
    assert result["invalid"][0]["value"] == "not a link at all"
    job = result["job"]
    assert (job["status"], job["total"], job["kind"], job["list_id"]) == ("queued", 5, "import", music["id"])
    rows = await fetch_all(session_maker, "SELECT id::text, status, total, list_id::text FROM jobs")
    assert rows == [{"id": job["id"], "status": "queued", "total": 5, "list_id": music["id"]}]
    videos = await fetch_all(session_maker, "SELECT youtube_id, status, job_id::text FROM videos")
    assert sorted(v["youtube_id"] for v in videos) == sorted(
        ["dQw4w9WgXcQ", "9bZkp7q19f0", "jNQXAC9IVRw", "_OBlgSz8sSM", "-wtIMTCHWuI"]
    )
    assert {(v["status"], v["job_id"]) for v in videos} == {("pending", job["id"])}
    saq = await fetch_all(session_maker, "SELECT key, status FROM saq_jobs WHERE key = :key", key=job["id"])
    assert saq == [{"key": job["id"], "status": "queued"}]


async def test_csv_body_reports_each_rejected_line_with_its_reason(client: Client, alice: Account) -> None:
    """A text/csv body is read by its url column; every rejected row comes back with its line and reason."""
    music = await create_list(client, alice)
    response = await post_import(
        client, alice, music["id"], (DATA / "mixed_valid_invalid.csv").read_bytes(), "text/csv"
    )
    assert response.status_code == 202, response.text
    result = response.json()
    assert counts(result) == (2, 1, [3, 4, 5, 6, 9, 10, 11, 14])
    reasons = {line["line"]: line["reason"] for line in result["invalid"]}
    assert "playlist" in reasons[3]
    assert "channel" in reasons[4]
    assert "search" in reasons[5]
    assert "vimeo.com" in reasons[6]
    assert "formula" in reasons[10]
    assert "empty" in reasons[11]
    assert result["job"]["total"] == 2


UPLOADS = {
    "takeout_new.csv": (3, 0, []),
    "takeout_old.csv": (2, 1, []),
    "takeout_time_added.csv": (2, 0, []),
    "excel_semicolon.csv": (3, 0, []),
    "tab_separated.tsv": (2, 0, [4]),
}


async def test_uploaded_files_are_read_in_every_supported_format(client: Client, alice: Account) -> None:
    """A multipart upload of a Takeout export, an Excel ;-CSV with BOM or a TSV gives the exact counts."""
    for sample, expected in UPLOADS.items():
        target = await create_list(client, alice, sample)
        response = await client.post(
            f"/api/lists/{target['id']}/imports",
            files={"file": (sample, (DATA / sample).read_bytes(), "text/csv")},
            headers=alice.headers,
        )
        assert response.status_code == 202, (sample, response.text)
        assert counts(response.json()) == expected, sample


async def test_bom_and_semicolons_work_as_a_raw_body_too(client: Client, alice: Account) -> None:
    """A UTF-8 BOM and the ; delimiter are handled in a text/csv body as in an upload."""
    music = await create_list(client, alice)
    body = '\ufeffTitel;URL\r\nA;https://youtu.be/dQw4w9WgXcQ\r\n"B; C";youtu.be/9bZkp7q19f0\r\n'.encode()
    response = await post_import(client, alice, music["id"], body, "text/csv")
    assert response.status_code == 202, response.text
    assert counts(response.json()) == (2, 0, [])


async def test_a_multipart_text_field_is_read_like_a_paste(client: Client, alice: Account) -> None:
    """The paste box sent as one multipart text field is imported like a text body."""
    music = await create_list(client, alice)
    response = await client.post(
        f"/api/lists/{music['id']}/imports",
        files={"text": (None, "dQw4w9WgXcQ\nhttps://youtu.be/9bZkp7q19f0")},
        headers=alice.headers,
    )
    assert response.status_code == 202, response.text
    assert counts(response.json()) == (2, 0, [])


async def test_two_files_in_one_form_are_refused(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """A multipart form with two files is a 422 and nothing is written."""
    music = await create_list(client, alice)
    before = await count_rows(session_maker)
    response = await client.post(
        f"/api/lists/{music['id']}/imports",
        files=[
            ("a", ("a.txt", b"dQw4w9WgXcQ", "text/plain")),
            ("b", ("b.txt", b"9bZkp7q19f0", "text/plain")),
        ],
        headers=alice.headers,
    )
    assert response.status_code == 422, response.text
    assert "one file" in response.json()["detail"]
    assert await count_rows(session_maker) == before


async def test_duplicates_count_within_the_file_and_against_the_list(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """Repeats in a file and videos already in the list are duplicates; an all-known import is 200, job null."""
    music = await create_list(client, alice)
    first = await import_ids(client, alice, music["id"], ["vid00000001", "vid00000002", "vid00000001"])
    assert counts(first) == (2, 1, [])
    second = await import_ids(
        client, alice, music["id"], ["vid00000001", "vid00000002", "vid00000003", "vid00000003"]
    )
    assert counts(second) == (1, 3, [])
    assert second["job"]["total"] == 1
    before = await count_rows(session_maker)
    third = await post_import(client, alice, music["id"], "vid00000002\nvid00000001\nnot a video")
    assert third.status_code == 200, third.text
    assert third.json()["job"] is None
    assert counts(third.json()) == (0, 2, [3])
    assert await count_rows(session_maker) == before
    assert before["videos"] == 3
    assert before["jobs"] == before["saq_jobs"] == 2
    other = await create_list(client, alice, "Other")  # duplicates are per list
    assert counts(await import_ids(client, alice, other["id"], ["vid00000001", "vid00000002"])) == (2, 0, [])


async def test_nothing_valid_is_422_with_reasons_and_writes_nothing(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """An import without one valid video (or empty) answers 422 with per-line reasons; no rows."""
    music = await create_list(client, alice)
    before = await count_rows(session_maker)
    body = "https://www.youtube.com/playlist?list=PLFgquLnL59alCl_2TQvOiD5Vgm1hCaGSI\nhello\n\nhttps://vimeo.com/1\n"
    response = await post_import(client, alice, music["id"], body)
    assert response.status_code == 422, response.text
    error = response.json()
    assert (error["status_code"], error["detail"]) == (422, "no valid YouTube video found in the import")
    invalid = error["extra"]["invalid"]
    assert [(line["line"], line["value"]) for line in invalid] == [
        (1, "https://www.youtube.com/playlist?list=PLFgquLnL59alCl_2TQvOiD5Vgm1hCaGSI"),
        (2, "hello"),
        (4, "https://vimeo.com/1"),
    ]
    assert all(line["reason"] for line in invalid)
    for empty in ("", "\n \n"):
        response = await post_import(client, alice, music["id"], empty)
        assert response.status_code == 422, (empty, response.text)
        assert response.json()["detail"] == "the import is empty"
    assert await count_rows(session_maker) == before


async def test_other_encodings_are_422_with_a_clear_message(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """A UTF-16 or Latin-1 file is refused with a 422 saying what it is and to save as UTF-8; no rows."""
    music = await create_list(client, alice)
    before = await count_rows(session_maker)
    for sample, words in (
        ("utf16_excel_unicode_text.csv", ("UTF-8", "UTF-16")),
        ("latin1.csv", ("UTF-8", "Latin-1")),
    ):
        response = await client.post(
            f"/api/lists/{music['id']}/imports",
            files={"file": (sample, (DATA / sample).read_bytes(), "text/csv")},
            headers=alice.headers,
        )
        assert response.status_code == 422, (sample, response.text)
        detail = response.json()["detail"]
        assert all(word in detail for word in words), detail
    assert await count_rows(session_maker) == before


def body_of_exactly(size: int) -> bytes:
    """Distinct valid ids, one a line, padded with spaces to exactly `size` bytes."""
    lines = [f"vid{n:08d}" for n in range(size // 12)]
    body = "\n".join(lines).encode()
    return body + b" " * (size - len(body))


async def test_over_the_size_limit_is_413_and_writes_nothing(
    settings: Settings, alice: Account, session_maker: Sessions
) -> None:
    """With a 1000-byte limit, 1000 bytes import; 1001 (body or upload) and a huge body are 413, no rows."""
    async with client_with(settings, import_max_bytes=1000) as client:
        music = await create_list(client, alice)
        before = await count_rows(session_maker)
        url = f"/api/lists/{music['id']}/imports"
        too_big = {
            "raw body": await post_import(client, alice, music["id"], body_of_exactly(1001)),
            "upload": await client.post(
                url, files={"file": ("big.txt", body_of_exactly(1001), "text/plain")}, headers=alice.headers
            ),
            "huge body": await post_import(client, alice, music["id"], body_of_exactly(200_000)),
        }
        for case, response in too_big.items():
            assert response.status_code == 413, (case, response.text)
            assert response.json()["status_code"] == 413
        assert await count_rows(session_maker) == before
        fits = await post_import(client, alice, music["id"], body_of_exactly(1000))
        assert fits.status_code == 202, fits.text
        assert fits.json()["accepted"] == 1000 // 12


async def test_over_the_row_limit_is_413_and_writes_nothing(
    settings: Settings, alice: Account, session_maker: Sessions
) -> None:
    """With a 10-row limit, 11 rows (valid or not) are a 413 naming the limit; 10 rows import."""
    async with client_with(settings, import_max_rows=10) as client:
        music = await create_list(client, alice)
        before = await count_rows(session_maker)
        eleven = [f"vid{n:08d}" for n in range(10)] + ["not a video"]
        response = await post_import(client, alice, music["id"], "\n".join(eleven))
        assert response.status_code == 413, response.text
        assert response.json()["extra"] == {"max_rows": 10}
        assert await count_rows(session_maker) == before
        ten = await post_import(client, alice, music["id"], "\n".join(eleven[:10]))
        assert ten.status_code == 202, ten.text
        assert ten.json()["accepted"] == 10


async def test_import_into_an_unknown_list_is_404_and_writes_nothing(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """A valid import into a list id that does not exist is a 404; no videos, jobs or SAQ jobs."""
    await create_list(client, alice)
    before = await count_rows(session_maker)
    response = await post_import(client, alice, "01a226b6-0000-7000-8000-000000000000", "dQw4w9WgXcQ")
    assert response.status_code == 404, response.text
    assert await count_rows(session_maker) == before


JUNK_LINES = [f"junk line {n}" for n in range(1001)]


async def test_reported_invalid_lines_are_capped_at_1000(client: Client, alice: Account) -> None:
    """A 202 and a 422 list at most 1000 rejected lines, the first ones."""
    music = await create_list(client, alice)
    accepted = await post_import(client, alice, music["id"], "\n".join(["vid00000001", *JUNK_LINES]))
    assert accepted.status_code == 202, accepted.text
    assert [line["line"] for line in accepted.json()["invalid"]] == list(range(2, 1002))
    refused = await post_import(client, alice, music["id"], "\n".join(JUNK_LINES))
    assert refused.status_code == 422
    assert len(refused.json()["extra"]["invalid"]) == 1000


async def test_invalid_lines_are_capped_when_every_video_is_a_duplicate(
    client: Client, alice: Account
) -> None:
    """The 200 answer of an import whose videos are all known also lists at most 1000 rejected lines."""
    music = await create_list(client, alice)
    await import_ids(client, alice, music["id"], ["vid00000001"])
    response = await post_import(client, alice, music["id"], "\n".join(["vid00000001", *JUNK_LINES]))
    assert response.status_code == 200, response.text
    assert len(response.json()["invalid"]) == 1000

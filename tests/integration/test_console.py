"""The queue console at /saq: SAQ's UI behind our auth, for operators only, and its Abort is a clean cancel."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import uuid

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.exits import ExitCode
from db.models import User
from testkit.accounts import Account, create_account
from tests.integration.api.helpers import count_rows, create_list, fetch_all, import_ids

Client = AsyncTestClient[Litestar]
Sessions = async_sessionmaker[AsyncSession]
QUEUE = "bookmarks"


def basic(token: str, user: str = "operator") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


async def operator(sessions: Sessions) -> Account:
    account = await create_account(sessions, "ops@example.com")
    async with sessions() as session:
        await session.execute(update(User).where(User.id == account.user_id).values(is_admin=True))
        await session.commit()
    return account


async def queued_job(client: Client, owner: Account) -> str:
    listing = await create_list(client, owner)
    job_id: str = (await import_ids(client, owner, listing["id"], ["dQw4w9WgXcQ", "9bZkp7q19f0"]))["job"][
        "id"
    ]
    return job_id


async def test_no_credentials_get_a_basic_challenge_so_a_browser_asks(client: Client) -> None:
    for path in ["/saq", "/saq/", "/saq/api/queues", f"/saq/api/queues/{QUEUE}/jobs/x/abort"]:
        response = await (client.post(path) if path.endswith("abort") else client.get(path))
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"].startswith('Basic realm="'), path


async def test_a_wrong_token_is_refused_and_basic_works_only_under_the_console(
    client: Client, session_maker: Sessions, alice: Account
) -> None:
    ops = await operator(session_maker)
    assert (await client.get("/saq/", headers=basic("sytb_not-a-token"))).status_code == 401
    assert (await client.get("/saq/", headers={"Authorization": "Basic %%%"})).status_code == 401
    # The API takes bearer tokens only: a browser's remembered console password never reaches it.
    refused = await client.get("/api/me", headers=basic(ops.token))
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert (await client.get("/api/me", headers=ops.headers)).status_code == 200


async def test_me_says_who_is_an_operator(client: Client, session_maker: Sessions, alice: Account) -> None:
    ops = await operator(session_maker)
    assert (await client.get("/api/me", headers=ops.headers)).json()["is_admin"] is True
    assert (await client.get("/api/me", headers=alice.headers)).json()["is_admin"] is False


async def test_users_who_are_not_operators_are_refused(client: Client, alice: Account) -> None:
    for headers in (basic(alice.token), alice.headers):
        response = await client.get("/saq/api/queues", headers=headers)
        assert response.status_code == 403
        assert "operators" in response.json()["detail"]


async def test_an_operator_gets_the_page_its_files_and_the_queue(
    client: Client, session_maker: Sessions, alice: Account
) -> None:
    ops = await operator(session_maker)
    job_id = await queued_job(client, alice)

    page = await client.get(f"/saq/queues/{QUEUE}/jobs/{job_id}", headers=basic(ops.token))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text, "the CSP forbids inline script"
    assert '<script src="/saq/static/app.js">' in page.text

    root = await client.get("/saq/static/root.js", headers=basic(ops.token))
    assert root.text == 'const root_path = "/saq";\n'
    app_js = await client.get("/saq/static/app.js", headers=basic(ops.token))
    assert "apiPath" in app_js.text
    assert app_js.headers["x-content-type-options"] == "nosniff"
    zipped = await client.get(
        "/saq/static/pico.min.css", headers={**basic(ops.token), "Accept-Encoding": "identity"}
    )
    assert zipped.headers["content-type"].startswith("text/css")
    assert "content-encoding" not in zipped.headers
    assert zipped.content.startswith(b"@charset") or zipped.content.startswith(b"/*"), zipped.content[:40]
    assert (await client.get("/saq/static/../../etc/passwd", headers=basic(ops.token))).status_code == 404
    assert (await client.get("/saq/static/nope.js", headers=basic(ops.token))).status_code == 404

    queues = (await client.get("/saq/api/queues", headers=basic(ops.token))).json()["queues"]
    assert [queue["name"] for queue in queues] == [QUEUE]
    queue = (await client.get(f"/saq/api/queues/{QUEUE}", headers=ops.headers)).json()["queue"]
    assert job_id in [job["key"] for job in queue["jobs"]]
    job = (await client.get(f"/saq/api/queues/{QUEUE}/jobs/{job_id}", headers=ops.headers)).json()["job"]
    assert (job["function"], job["status"]) == ("process_job", "queued")
    assert (
        await client.get(f"/saq/api/queues/{QUEUE}/jobs/{uuid.uuid4()}", headers=ops.headers)
    ).status_code == 404
    assert (await client.get("/saq/api/queues/other", headers=ops.headers)).status_code == 404


async def test_abort_cancels_the_job_for_its_owner_with_a_terminal_event(
    client: Client, session_maker: Sessions, alice: Account
) -> None:
    ops = await operator(session_maker)
    job_id = await queued_job(client, alice)
    aborted = await client.post(
        f"/saq/api/queues/{QUEUE}/jobs/{job_id}/abort",
        headers={**basic(ops.token), "Origin": "http://testserver.local"},
    )
    assert aborted.status_code == 200, aborted.text

    job = (await client.get(f"/api/jobs/{job_id}", headers=alice.headers)).json()
    assert job["status"] == "cancelled"
    events = await fetch_all(
        session_maker,
        "SELECT user_id, data->>'status' AS status FROM progress_events WHERE job_id = :job ORDER BY seq",
        job=uuid.UUID(job_id),
    )
    assert events[-1] == {"user_id": alice.user_id, "status": "cancelled"}, "the owner sees it end"
    again = await client.post(f"/saq/api/queues/{QUEUE}/jobs/{job_id}/abort", headers=ops.headers)
    assert again.status_code == 409, "a finished job cannot be cancelled twice"


async def test_a_post_from_another_site_changes_nothing(
    client: Client, session_maker: Sessions, alice: Account
) -> None:
    """The browser resends Basic credentials by itself, so a cross-site form must not ride on them."""
    ops = await operator(session_maker)
    job_id = await queued_job(client, alice)
    before = await count_rows(session_maker)
    for action in ("abort", "retry"):
        response = await client.post(
            f"/saq/api/queues/{QUEUE}/jobs/{job_id}/{action}",
            headers={**basic(ops.token), "Origin": "https://evil.example"},
        )
        assert response.status_code == 403, action
    assert await count_rows(session_maker) == before
    async with session_maker() as session:
        assert await session.scalar(text("SELECT status FROM jobs")) == "queued"


async def bookmarks(database_url: str, *args: str) -> tuple[int, str]:
    """The real `bookmarks` command in a subprocess, as an operator types it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from app.cli import run_cli; run_cli()", *args,
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(60):
        output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


async def test_operators_are_made_and_unmade_from_the_command_line(client: Client, database_url: str) -> None:
    code, output = await bookmarks(database_url, "users", "create", "ops@example.com", "--admin")
    assert code == 0, output
    assert "created operator ops@example.com" in output
    token = output.strip().splitlines()[-1]
    assert (await client.get("/saq/api/queues", headers=basic(token))).status_code == 200

    code, output = await bookmarks(database_url, "users", "admin", "ops@example.com", "--revoke")
    assert (code, output.strip()) == (0, "ops@example.com is no longer an operator")
    assert (await client.get("/saq/api/queues", headers=basic(token))).status_code == 403

    code, output = await bookmarks(database_url, "users", "admin", "nobody@example.com")
    assert code != 0
    assert "no user with email nobody@example.com" in output


async def test_a_command_on_a_database_without_tables_says_what_to_run(empty_database: str) -> None:
    """Not a page of traceback: one line tells the operator to migrate first, and the exit code is 78."""
    code, output = await bookmarks(empty_database, "users", "create", "ops@example.com", "--admin")
    assert code == ExitCode.CONFIG, output
    assert output.splitlines() == [
        "bookmarks: the database has no tables yet: run `bookmarks database upgrade --no-prompt` first"
        " (`bookmarks run` does it by itself)"
    ]


async def test_the_console_without_its_trailing_slash_redirects_to_it(
    client: Client, session_maker: Sessions
) -> None:
    """`/saq`, as people type it, leads to `/saq/`: SAQ's page routes on the path and knows only the latter."""
    ops = await operator(session_maker)
    response = await client.get("/saq", headers=basic(ops.token), follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (302, "/saq/")
    page = await client.get("/saq/", headers=basic(ops.token))
    assert page.status_code == 200
    assert "root.js" in page.text

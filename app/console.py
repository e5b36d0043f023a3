"""The queue console at /saq: SAQ's own monitoring UI (its `app.js`), for operators only.

SAQ ships the UI for Starlette and aiohttp; these are the same few routes as Litestar handlers, so the
console sits behind our authentication instead of beside it. A browser signs in with HTTP Basic (any user
name, an operator's API token as the password): the UI's own `fetch` calls carry no bearer header, but a
browser resends Basic credentials to everything under /saq by itself. Only users with `is_admin` get in.

Two changes from SAQ's UI, both for safety: the page has no inline script (our CSP forbids it, so
`root_path` comes from a small script file), and "Abort" cancels the job the way its owner's Cancel button
does (the worker stops between batches and writes the terminal event), instead of killing the task
mid-batch and leaving the job's row `running` for the stranded-job sweep to restart.
"""

from __future__ import annotations

import gzip
from typing import Any, Final
from uuid import UUID

from litestar import Request, Response, Router, get, post
from litestar.connection import ASGIConnection
from litestar.enums import MediaType
from litestar.exceptions import NotFoundException, PermissionDeniedException
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath
from litestar.response import Redirect
from litestar.types import Guard
from saq.web.common import STATIC_PATH, job_dict
from sqlalchemy import select

from app.api.deps import DbSession, Queue
from app.auth import origin_allowed
from app.dashboard.routes import SecurityHeadersMiddleware
from app.services.jobs import request_cancel
from app.settings import Settings
from db.models import Job, User
from workers.queue import JobQueue

CONSOLE_PATH: Final = "/saq"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
PAGE: Final = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="{CONSOLE_PATH}/static/pico.min.css">
<title>Queue console · Smart YouTube Bookmarks</title>
</head>
<body>
<main class="container" id="app"></main>
<script src="{CONSOLE_PATH}/static/root.js"></script>
<script src="{CONSOLE_PATH}/static/snabbdom.js"></script>
<script src="{CONSOLE_PATH}/static/app.js"></script>
</body>
</html>
""".encode()
ROOT_SCRIPT: Final = f'const root_path = "{CONSOLE_PATH}";\n'.encode()
STATIC_FILES: Final = {
    "pico.min.css": ("pico.min.css.gz", "text/css"),
    "snabbdom.js": ("snabbdom.js.gz", "text/javascript"),
    "app.js": ("app.js", "text/javascript"),
}


def operators_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Signed in (the auth middleware saw to that) is not enough: the console shows every user's jobs."""
    user: User = connection.user
    if not user.is_admin:
        raise PermissionDeniedException("the queue console is for operators (bookmarks users admin EMAIL)")


def same_origin_changes_only(settings: Settings) -> Guard:
    """A browser resends Basic credentials on its own, so a POST from another site must not ride on them."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        method = connection.scope.get("method", "GET")
        if method not in SAFE_METHODS and not origin_allowed(connection, settings):
            raise PermissionDeniedException("cross-origin requests to the queue console are refused")

    return guard


def static_file(name: str, accepts_gzip: bool) -> Response[bytes]:
    if name == "root.js":
        return Response(ROOT_SCRIPT, media_type="text/javascript")
    if name not in STATIC_FILES:
        raise NotFoundException(f"no console file {name!r}")
    file_name, media_type = STATIC_FILES[name]
    content = (STATIC_PATH / file_name).read_bytes()
    if not file_name.endswith(".gz"):
        return Response(content, media_type=media_type)
    vary = {"Vary": "Accept-Encoding"}
    if accepts_gzip:
        return Response(content, media_type=media_type, headers={"Content-Encoding": "gzip", **vary})
    return Response(gzip.decompress(content), media_type=media_type, headers=vary)


def queue_named(job_queue: JobQueue, name: str) -> Any:
    if name != job_queue.saq_queue.name:
        raise NotFoundException(f"no queue {name!r}")
    return job_queue.saq_queue


async def saq_job(job_queue: JobQueue, queue: str, key: str) -> Any:
    job = await queue_named(job_queue, queue).job(key)
    if job is None:
        raise NotFoundException(f"no job {key!r} in queue {queue!r}")
    return job


@get(["/", "/queues/{queue:str}", "/queues/{queue:str}/jobs/{key:str}"], sync_to_thread=False)
def page(request: Request[Any, Any, Any]) -> Response[bytes] | Redirect:
    """One page for every console URL; `app.js` routes on the path."""
    if request.scope.get("raw_path") == CONSOLE_PATH.encode():
        # Routing takes /saq for /saq/ (the scope's path loses the slash), but app.js knows only /saq/
        # and would show its "not found"; the raw path is what the browser asked for.
        return Redirect(CONSOLE_PATH + "/")
    return Response(PAGE, media_type=MediaType.HTML)


@get("/static/{name:str}", sync_to_thread=False)
def static(request: Request[Any, Any, Any], name: FromPath[str]) -> Response[bytes]:
    return static_file(name, "gzip" in request.headers.get("accept-encoding", ""))


@get("/api/queues")
async def all_queues(job_queue: Queue) -> dict[str, Any]:
    return {"queues": [await job_queue.saq_queue.info()]}


@get("/api/queues/{queue:str}")
async def one_queue(job_queue: Queue, queue: FromPath[str]) -> dict[str, Any]:
    return {"queue": await queue_named(job_queue, queue).info(jobs=True)}


@get("/api/queues/{queue:str}/jobs/{key:str}")
async def one_job(job_queue: Queue, queue: FromPath[str], key: FromPath[str]) -> dict[str, Any]:
    return {"job": job_dict(await saq_job(job_queue, queue, key))}


@post("/api/queues/{queue:str}/jobs/{key:str}/retry", status_code=200)
async def retry(job_queue: Queue, queue: FromPath[str], key: FromPath[str]) -> dict[str, Any]:
    """Run the job again; harmless, since a run resumes after the last committed batch."""
    await (await saq_job(job_queue, queue, key)).retry("retried from the queue console")
    return {}


@post("/api/queues/{queue:str}/jobs/{key:str}/abort", status_code=200)
async def abort(
    db_session: DbSession, job_queue: Queue, queue: FromPath[str], key: FromPath[str]
) -> dict[str, Any]:
    """Cancel the job as its owner would; see the module docstring for why not SAQ's abort."""
    await saq_job(job_queue, queue, key)
    job_id = parse_job_id(key)
    owner = await db_session.scalar(select(Job.user_id).where(Job.id == job_id))
    if owner is None:
        raise NotFoundException(f"no bookmarks job {key!r}")
    await request_cancel(db_session, owner, job_id)
    await db_session.commit()
    return {}


def parse_job_id(key: str) -> UUID:
    try:
        return UUID(key)
    except ValueError:
        raise NotFoundException(f"{key!r} is not a bookmarks job") from None


def console_router(settings: Settings) -> Router:
    return Router(
        path=CONSOLE_PATH,
        route_handlers=[page, static, all_queues, one_queue, one_job, retry, abort],
        guards=[operators_only, same_origin_changes_only(settings)],
        middleware=[SecurityHeadersMiddleware()],
        include_in_schema=False,
    )

"""`bookmarks import` and `bookmarks watch`: the live protocol (docs/design.md) in a terminal.

A third-party client in a few hundred lines: HTTP for the upload, then one WebSocket that says hello with
the last seq it saw, dedupes by seq, treats a snapshot as the new truth, and reconnects with backoff and
jitter. Bars are labelled by the job's source and list and coloured by its outcome. While the socket is
down the bars say so (their state is as of the last update) and a line counts down to the next attempt; a
server that refuses connections (restarting) is tried again every second or two, so the bars resume as
soon as it is back; a close 4430 (rate limited) waits as long as the server asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import websockets
from rich.console import Console, RenderableType
from rich.progress import BarColumn, Progress, Task, TaskID, TextColumn
from rich.progress_bar import ProgressBar
from rich.text import Text

from app.exits import CommandError, ExitCode
from app.wording import plural

TERMINAL = {"completed", "completed_with_errors", "failed", "cancelled"}
EXIT_CODES = {
    "completed": ExitCode.OK,
    "completed_with_errors": ExitCode.COMPLETED_WITH_ERRORS,
    "failed": ExitCode.JOB_FAILED,
    "cancelled": ExitCode.JOB_FAILED,
}
"""`bookmarks import`'s exit code by how the job ended (README, "Exit codes"): 0 only when every video is
ready. Problems before the job could start have their own codes (app/exits.py)."""
SEVERITY = [ExitCode.OK, ExitCode.COMPLETED_WITH_ERRORS, ExitCode.JOB_FAILED]
"""Of several jobs (a Takeout import), the exit code is the worst one's."""
OUTCOME_STYLES = {
    "queued": "grey50",
    "running": "blue",
    "waiting": "dark_orange",
    "completed": "green",
    "completed_with_errors": "yellow",
    "failed": "red",
    "cancelled": "magenta",
}
CLOSE_UNAUTHENTICATED = 4401
CLOSE_RATE_LIMITED = 4430
"""Too many failed token checks from this address; the reason says `retry in N s`. Not a refusal of the
token: it is kept, and tried again then."""
CLOSE_REASONS = {
    1011: "the server failed",
    1012: "the server is restarting",
    1013: "the server asked this client to slow down",
    4429: "too many open connections for this user",
    CLOSE_RATE_LIMITED: "rate limited: too many failed sign-ins from this address",
}
RETRY_IN = re.compile(r"retry in (\d+) s")
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 30.0
UNREACHABLE_RETRY_MAX_S = 2.0
"""A server that refuses connections (restarting, or not started yet) costs nothing to ask again: the bars
resume within this long of its return instead of after a backoff of up to 30 s."""
CONNECT_TIMEOUT_S = 10.0
MAX_BACKOFF_EXPONENT = math.ceil(math.log2(BACKOFF_MAX_S / BACKOFF_INITIAL_S))
"""Past this many attempts the backoff is at its cap anyway."""

console = Console(stderr=True, soft_wrap=True)  # a log file gets whole lines, not lines cut at 80


class ClientError(CommandError):
    """A problem the user must fix (bad token, bad file, server refused); the message says which."""

    def __init__(self, message: str, code: ExitCode = ExitCode.DATA, status: int | None = None) -> None:
        super().__init__(message, code)
        self.status = status
        """The HTTP status of the server's refusal, if it was one."""

    @property
    def refused(self) -> bool:
        """The server said no (4xx): it wrote nothing. A 5xx or a lost answer may have written something."""
        return self.status is not None and 400 <= self.status < 500


def websocket_url(server: str) -> str:
    parts = urlsplit(server)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, "/api/ws/progress", "", ""))


def api_client(server: str, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server,
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx.Timeout(120.0, connect=CONNECT_TIMEOUT_S),
    )


@contextlib.asynccontextmanager
async def reaching(server: str) -> AsyncIterator[None]:
    """An HTTP request that cannot reach the server becomes one line that says so (exit 69)."""
    try:
        yield
    except httpx.TransportError as error:
        raise ClientError(
            f"cannot reach the server at {server} ({connect_problem(error)}): is `bookmarks run` running"
            " there? (--server or BOOKMARKS_SERVER)",
            ExitCode.UNAVAILABLE,
        ) from error


def connect_problem(error: BaseException) -> str:
    """Why a connection failed, in a few words."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, socket.gaierror):
            return "unknown host"
        if isinstance(seen, TimeoutError | httpx.TimeoutException):
            return "no answer"
        if isinstance(seen, websockets.InvalidStatus):
            return f"HTTP {seen.response.status_code}"
        seen = seen.__cause__ or seen.__context__
    if isinstance(error, httpx.ConnectError):
        return "connection refused"  # httpcore says "All connection attempts failed", without a cause
    return str(error) or type(error).__name__


def problem_code(status: int) -> ExitCode:
    if status in {401, 403}:
        return ExitCode.NO_PERMISSION
    if status == 429:
        return ExitCode.TEMPORARY
    if status >= 500:
        return ExitCode.UNAVAILABLE
    return ExitCode.DATA


def raise_for_problem(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    if response.status_code == 401:
        raise ClientError(
            f"the server refused the token (401 {detail}); `bookmarks tokens create EMAIL` prints a new one",
            ExitCode.NO_PERMISSION,
            response.status_code,
        )
    raise ClientError(
        f"{response.request.method} {response.request.url.path}: {response.status_code} {detail}",
        problem_code(response.status_code),
        response.status_code,
    )


@dataclass(frozen=True)
class Target:
    """The list an import goes into, and whether this import made it."""

    list_id: str
    name: str
    created: bool


async def every_list(api: httpx.AsyncClient) -> AsyncIterator[dict[str, Any]]:
    """The user's lists, a page of 1,000 at a time (fetched as they are consumed)."""
    offset = 0
    while True:
        response = await api.get("/api/lists", params={"limit": 1000, "offset": offset})
        raise_for_problem(response)
        page = response.json()
        for item in page["items"]:
            yield item
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            return


async def find_or_create_list(api: httpx.AsyncClient, name: str) -> Target:
    """The list of that name, made if missing. The name is matched as the server stores it (stripped),
    so `--list "Music "` finds Music instead of making another list each run."""
    name = name.strip()
    async for item in every_list(api):
        if item["name"] == name:
            return Target(str(item["id"]), name, created=False)
    created = await api.post("/api/lists", json={"name": name})
    raise_for_problem(created)
    return Target(str(created.json()["id"]), name, created=True)


async def upload_into(api: httpx.AsyncClient, list_name: str, path: Path) -> tuple[Target, dict[str, Any]]:
    """The upload into its list. A file the server refuses leaves nothing behind: the list this import
    made for it is deleted again (a refusal writes nothing)."""
    target = await find_or_create_list(api, list_name)
    try:
        result = await upload(api, target.list_id, path)
    except ClientError as error:
        if target.created and error.refused:
            await forget_list(api, target)
        raise
    if target.created:
        console.print(f"Created list [bold]{target.name}[/bold]")
    return target, result


async def forget_list(api: httpx.AsyncClient, target: Target) -> None:
    response = await api.delete(f"/api/lists/{target.list_id}")
    if not response.is_success and response.status_code != 404:
        console.print(
            f"[yellow]The list {target.name} made for this import is still there, empty"
            f" ({response.status_code} when deleting it): delete it on the dashboard."
        )


async def upload(api: httpx.AsyncClient, list_id: str, path: Path) -> dict[str, Any]:
    with path.open("rb") as file:
        response = await api.post(
            f"/api/lists/{list_id}/imports", files={"file": (path.name, file, "text/csv")}
        )
    if response.status_code == 422:
        body = response.json()
        for line in (body.get("extra") or {}).get("invalid", [])[:20]:
            console.print(f"  line {line['line']}: {line['reason']} ({line['value']})")
    raise_for_problem(response)
    result: dict[str, Any] = response.json()
    return result


@dataclass
class Connection:
    """What the follower knows of its socket, for the display."""

    up: bool = False
    ever_up: bool = False
    problem: str = ""
    """Why it is down."""
    down_since: float | None = None
    retry_at: float | None = None
    """When (time.monotonic()) the next attempt starts."""


@dataclass
class LiveFollower:
    """Keeps job states current from the socket, across reconnects, until `done(states)` is true."""

    url: str
    token: str
    on_change: Callable[[dict[str, dict[str, Any]]], None]
    done: Callable[[dict[str, dict[str, Any]]], bool]
    on_connection: Callable[[Connection], None] = lambda _: None
    before_frame: Callable[[dict[str, Any]], Awaitable[None]] | None = None
    """Awaited before each frame is applied (`watch` looks up the names of lists it has not seen)."""
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_seq: int | None = None
    reconnects: int = 0
    connection: Connection = field(default_factory=Connection)

    async def run(self) -> dict[str, dict[str, Any]]:
        attempt = 0
        while True:
            unreachable = False
            asked_s = 0.0
            try:
                if await self.session():
                    return self.states
                problem = "the server closed the connection"
            except websockets.ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd is not None else None
                if code == CLOSE_UNAUTHENTICATED:
                    raise ClientError(
                        "the server refused the token (4401): it is unknown, revoked or expired",
                        ExitCode.NO_PERMISSION,
                    ) from closed
                problem = CLOSE_REASONS.get(code or 0, "the connection dropped")
                unreachable = code == 1012
                if code == CLOSE_RATE_LIMITED and closed.rcvd is not None:
                    asked_s = retry_after_s(closed.rcvd.reason)
            except (OSError, websockets.InvalidHandshake, TimeoutError, httpx.TransportError) as error:
                problem = connect_problem(error)
                unreachable = isinstance(error, OSError | httpx.ConnectError)
            if self.connection.up:
                attempt = 0
            delay = max(retry_delay(attempt, unreachable=unreachable), min(asked_s, BACKOFF_MAX_S))
            attempt += 1
            self.reconnects += 1
            self.went_down(problem, delay)
            await asyncio.sleep(delay)

    async def session(self) -> bool:
        async with websockets.connect(self.url, open_timeout=CONNECT_TIMEOUT_S) as ws:
            await ws.send(json.dumps({"type": "hello", "token": self.token, "after": self.last_seq}))
            async for raw in ws:
                frame = json.loads(raw)
                if self.before_frame is not None:
                    await self.before_frame(frame)
                if self.handle(frame):
                    return True
        return False

    def handle(self, frame: dict[str, Any]) -> bool:
        kind = frame.get("type")
        if kind == "snapshot":
            self.states = {job["job_id"]: job for job in frame["jobs"]}
            self.last_seq = frame["seq"]
        elif kind == "ready":
            self.last_seq = frame["seq"]
            self.came_up()
        elif kind == "event":
            if self.last_seq is not None and frame["seq"] <= self.last_seq:
                return False  # already seen (a replay overlapping what we had)
            self.last_seq = frame["seq"]
            self.states[frame["job_id"]] = frame
        else:
            return False
        self.on_change(self.states)
        if not self.done(self.states):
            return False
        if (
            not self.connection.up
        ):  # ended by a replay or snapshot before `ready`: the socket is up all the same
            self.came_up()
        return True

    def came_up(self) -> None:
        self.connection = Connection(up=True, ever_up=True, down_since=self.connection.down_since)
        self.on_connection(self.connection)

    def went_down(self, problem: str, retry_in_s: float) -> None:
        now = time.monotonic()
        was = self.connection
        self.connection = Connection(
            up=False,
            ever_up=was.ever_up,
            problem=problem,
            down_since=now if was.up or was.down_since is None else was.down_since,
            retry_at=now + retry_in_s,
        )
        self.on_connection(self.connection)


def retry_after_s(reason: str) -> float:
    """The wait a 4430's reason asks for ("rate limited; retry in 12 s"), or 0."""
    found = RETRY_IN.search(reason)
    return float(found[1]) if found else 0.0


def retry_delay(attempt: int, *, unreachable: bool) -> float:
    """Exponential backoff with equal jitter; short for a server that refuses (restarting: ask again soon)."""
    cap = UNREACHABLE_RETRY_MAX_S if unreachable else BACKOFF_MAX_S
    # The exponent stops growing once the cap is reached: 2.0**1024 overflows a float (a server down for
    # half an hour, asked every second or two, gets there).
    ceiling = min(BACKOFF_INITIAL_S * 2.0 ** min(attempt, MAX_BACKOFF_EXPONENT), cap)
    return random.uniform(ceiling / 2, ceiling)


class JobProgress(Progress):
    """rich's Progress, plus a line above the bars while the socket is down, counting to the next try."""

    connection = Connection(up=True)

    def get_renderables(self) -> Iterable[RenderableType]:
        if not self.connection.up:
            yield self.connection_line()
        if self.tasks:
            yield from super().get_renderables()

    def stop(self) -> None:
        if self.tasks:
            super().stop()
        else:  # nothing was drawn: leave no empty line behind
            self.live.transient = True
            self.live.stop()

    def connection_line(self) -> Text:
        wait = math.ceil(max(0.0, (self.connection.retry_at or 0) - time.monotonic()))
        verb = "reconnecting" if self.connection.ever_up else "connecting"
        when = f"next try in {wait} s" if wait else "trying now"
        return Text(f"{verb}… {self.connection.problem}; {when} (Ctrl-C to stop)", style="yellow")


class OutcomeBarColumn(BarColumn):
    """A bar in its job's colour: blue while running, then green, yellow, red or magenta by outcome."""

    def render(self, task: Task) -> ProgressBar:
        bar = super().render(task)
        bar.complete_style = bar.finished_style = OUTCOME_STYLES.get(task.fields.get("status", ""), "blue")
        return bar


@dataclass
class JobLabels:
    """Labels a person recognises a job by: its source and list ("links.csv into Music"), with its start
    time when another job reads the same; never an id prefix, which collides."""

    list_names: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    looked_up: set[str] = field(default_factory=set)
    """List ids already looked for (a list deleted since is not asked for again and again)."""

    def label(self, state: dict[str, Any]) -> str:
        job_id = state["job_id"]
        if job_id not in self.labels:
            list_name = self.list_names.get(state.get("list_id") or "", "a deleted list")
            preposition = "of" if state.get("kind") == "refresh" else "into"
            base = f"{state.get('source') or state.get('kind') or 'job'} {preposition} {list_name}"
            taken = set(self.labels.values())
            label = base
            if label in taken and state.get("started_at"):
                label = f"{base} at {str(state['started_at'])[11:19]}"
            number = 2
            while label in taken:
                label = f"{base} ({number})"
                number += 1
            self.labels[job_id] = label
        return self.labels[job_id]

    def unknown_lists(self, frame: dict[str, Any]) -> set[str]:
        """The lists a frame names whose names have not been looked up yet."""
        jobs = frame.get("jobs", []) if frame.get("type") == "snapshot" else [frame]
        named = {str(job["list_id"]) for job in jobs if job.get("list_id")}
        return named - self.list_names.keys() - self.looked_up


class JobBars:
    """One rich progress bar per job, labelled by its source and list and coloured by its outcome; while
    the socket is down, each says its state is as of then."""

    def __init__(self, progress: JobProgress, server: str, labels: JobLabels | None = None) -> None:
        self.progress = progress
        self.server = server
        self.labels = labels or JobLabels()
        self.tasks: dict[str, TaskID] = {}
        self.states: dict[str, dict[str, Any]] = {}

    def show(self, states: dict[str, dict[str, Any]]) -> None:
        self.states = states
        connected = self.progress.connection.up
        for gone in self.tasks.keys() - states.keys():  # a snapshot no longer holds it (ended long ago)
            self.progress.remove_task(self.tasks.pop(gone))
        for job_id, state in states.items():
            if job_id not in self.tasks:
                self.tasks[job_id] = self.progress.add_task(
                    self.labels.label(state),
                    total=max(state["total"], 1),
                    failed=0,
                    rate="",
                    eta="",
                    status="",
                )
            eta = state.get("eta_s")
            rate = state.get("rate")
            running = state["status"] not in TERMINAL
            self.progress.update(
                self.tasks[job_id],
                total=max(state["total"], 1),
                completed=state["processed"],
                status=state["status"] if connected or not running else "reconnecting…",
                failed=state["failed"],
                rate=f"{rate:.1f}/s" if rate and connected else "",
                eta=f"ETA {eta}s" if eta and running and connected else "",
            )

    def connection_changed(self, connection: Connection) -> None:
        was = self.progress.connection
        self.progress.connection = connection
        if connection.up and not was.up:
            if was.ever_up and connection.down_since is not None:
                console.print(f"Reconnected after {time.monotonic() - connection.down_since:.1f} s.")
            else:
                console.print(f"Connected to {self.server}.")
        elif not connection.up and was.up:
            if connection.ever_up:
                console.print(f"[yellow]Lost the connection ({connection.problem}); reconnecting…")
            else:
                console.print(
                    f"[yellow]Cannot reach the server at {self.server} ({connection.problem}); "
                    "trying again until it answers (Ctrl-C to stop)…"
                )
        self.show(self.states)


def progress_display() -> JobProgress:
    return JobProgress(
        TextColumn("[bold]{task.description}"),
        OutcomeBarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("[red]{task.fields[failed]} failed"),
        TextColumn("{task.fields[rate]} {task.fields[eta]}"),
        TextColumn("{task.fields[status]}"),
        console=console,
    )


def follow(
    server: str,
    token: str,
    bars: JobBars,
    done: Callable[[dict[str, dict[str, Any]]], bool],
    only: Collection[str] | None = None,
    before_frame: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
) -> LiveFollower:
    """A follower drawing every job's bar, or only those of `only` (an import's own jobs)."""
    return LiveFollower(
        websocket_url(server),
        token,
        on_change=lambda states: bars.show(
            states if only is None else {job_id: states[job_id] for job_id in only if job_id in states}
        ),
        done=done,
        on_connection=bars.connection_changed,
        before_frame=before_frame,
    )


async def import_file(server: str, token: str, path: Path, list_name: str) -> int:
    """Upload, then follow the job live; the exit code says how it ended."""
    async with api_client(server, token) as api, reaching(server):
        target, result = await upload_into(api, list_name, path)
    console.print(line_summary(result))
    for line in result["invalid"][:20]:
        console.print(f"  line {line['line']}: {line['reason']} ({line['value']})")
    job = result["job"]
    if job is None:
        console.print("Nothing new to fetch: every video is already in the list.")
        return ExitCode.OK
    return await follow_jobs(server, token, [job["id"]], {target.list_id: target.name})


async def import_takeout(server: str, token: str, path: Path) -> int:
    """A Google Takeout archive: the server makes a list of each playlist, with a job per list; follow
    them all live. The exit code says how the worst of them ended."""
    async with api_client(server, token) as api, reaching(server):
        with path.open("rb") as file:
            response = await api.post(
                "/api/imports/takeout", files={"file": (path.name, file, "application/zip")}
            )
        raise_for_problem(response)
    result: dict[str, Any] = response.json()
    for item in result["lists"]:
        made = " (new list)" if item["created"] else ""
        console.print(
            f"[bold]{item['name']}[/bold]{made}: accepted {item['accepted']:,},"
            f" duplicates {item['duplicates']:,}, invalid {item['invalid']:,}"
        )
    for skipped in result["skipped"]:
        console.print(f"  skipped {skipped['file']}: {skipped['reason']}")
    jobs = [item["job"]["id"] for item in result["lists"] if item["job"] is not None]
    if not jobs:
        console.print("Nothing new to fetch: every video is already in its list.")
        return ExitCode.OK
    names = {str(item["list_id"]): item["name"] for item in result["lists"]}
    return await follow_jobs(server, token, jobs, names)


async def follow_jobs(server: str, token: str, job_ids: list[str], list_names: dict[str, str]) -> int:
    """Bars for these jobs until each has ended; then how each ended, and the exit code of the worst."""
    async with api_client(server, token) as api:

        async def fill_in(frame: dict[str, Any]) -> None:
            # A snapshot holds the jobs that ended in the last ten minutes: one of ours that ended before
            # (the socket was down that long) is asked for over HTTP, or the wait would never end.
            if frame.get("type") != "snapshot":
                return
            held = {str(job["job_id"]) for job in frame["jobs"]}
            for job_id in job_ids:
                if job_id not in held:
                    response = await api.get(f"/api/jobs/{job_id}")
                    raise_for_problem(response)
                    frame["jobs"].append(state_from_api(response.json()))

        with progress_display() as progress:
            bars = JobBars(progress, server, JobLabels(list_names))
            follower = follow(
                server,
                token,
                bars,
                done=lambda states: all(states.get(job, {}).get("status") in TERMINAL for job in job_ids),
                only=job_ids,
                before_frame=fill_in,
            )
            states = await follower.run()
    codes = []
    for job_id in job_ids:
        final = states[job_id]
        style = OUTCOME_STYLES.get(final["status"], "")
        label = f"{bars.labels.label(final)}: " if len(job_ids) > 1 else ""
        console.print(f"{label}[{style}]{final['status']}[/{style}]: {final.get('message') or ''}")
        if final.get("error") and final["error"] not in (final.get("message") or ""):
            console.print(f"[red]last error: {final['error']}")
        codes.append(EXIT_CODES.get(final["status"], ExitCode.JOB_FAILED))
    return max(codes, key=SEVERITY.index)


EVENT_FIELDS = (
    "list_id",
    "kind",
    "source",
    "status",
    "total",
    "processed",
    "failed",
    "rate",
    "eta_s",
    "message",
)


def state_from_api(job: dict[str, Any]) -> dict[str, Any]:
    """A job as GET /api/jobs/{id} gives it, in the shape of its progress events (what the bars draw)."""
    state = {key: job.get(key) for key in (*EVENT_FIELDS, "started_at")}
    return state | {"job_id": str(job["id"]), "seq": job.get("last_seq") or 0, "error": job.get("last_error")}


def line_summary(result: dict[str, Any]) -> str:
    """ "accepted 3 (1 retried), duplicates 1, invalid 1 (of 9 lines: 3 blank, 1 header or comment)":
    every line (a retried one is accepted: the job fetches it again)."""
    lines = result["lines"]
    others = [f"{lines['blank']:,} blank"] if lines["blank"] else []
    if lines["skipped"]:
        others.append(f"{lines['skipped']:,} header or comment")
    retried = f" ({result['retried']:,} retried)" if result.get("retried") else ""
    return (
        f"accepted {result['accepted']:,}{retried}, duplicates {result['duplicates']:,},"
        f" invalid {lines['invalid']:,}"
        f" (of {plural(lines['total'], 'line')}{': ' + ', '.join(others) if others else ''})"
    )


async def watch(server: str, token: str) -> int:
    """Show every job live until interrupted, each labelled by its source and list."""
    labels = JobLabels()
    async with api_client(server, token) as api:

        async def learn_list_names(frame: dict[str, Any]) -> None:
            # Asked over HTTP once the socket is up (a server not there yet is the socket's to wait
            # for), and again when a job names a list created since.
            if unknown := labels.unknown_lists(frame):
                labels.list_names.update(await list_names(api))
                labels.looked_up |= unknown

        with progress_display() as progress:
            bars = JobBars(progress, server, labels)
            await follow(server, token, bars, done=lambda _: False, before_frame=learn_list_names).run()
    return ExitCode.OK


async def list_names(api: httpx.AsyncClient) -> dict[str, str]:
    """Every list's name by id (for labels)."""
    return {str(item["id"]): item["name"] async for item in every_list(api)}

"""`bookmarks import` and `bookmarks watch`: the live protocol (docs/design.md) in a terminal.

A third-party client in ~200 lines: HTTP for the upload, then one WebSocket that says hello with the last
seq it saw, dedupes by seq, treats a snapshot as the new truth, and reconnects with backoff and jitter.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import websockets
from rich.console import Console
from rich.progress import BarColumn, Progress, Task, TaskID, TextColumn
from rich.progress_bar import ProgressBar

TERMINAL = {"completed", "completed_with_errors", "failed", "cancelled"}
EXIT_CODES = {"completed": 0, "completed_with_errors": 3, "failed": 4, "cancelled": 4}
"""`bookmarks import`'s exit code by how the job ended (README, "Command line"): 0 only when every video
is ready. 1 is a client error (bad token, refused file, unreachable server), 2 a usage error (click)."""
OUTCOME_STYLES = {
    "queued": "grey50",
    "running": "blue",
    "completed": "green",
    "completed_with_errors": "yellow",
    "failed": "red",
    "cancelled": "magenta",
}
CLOSE_UNAUTHENTICATED = 4401
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 30.0

console = Console(stderr=True)


class ClientError(Exception):
    """A problem the user must fix (bad token, bad file, server refused); the message says which."""


def websocket_url(server: str) -> str:
    parts = urlsplit(server)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, "/api/ws/progress", "", ""))


def api_client(server: str, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server,
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx.Timeout(120.0, connect=10.0),
    )


def raise_for_problem(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    raise ClientError(
        f"{response.request.method} {response.request.url.path}: {response.status_code} {detail}"
    )


async def find_or_create_list(api: httpx.AsyncClient, name: str) -> str:
    offset = 0
    while True:
        response = await api.get("/api/lists", params={"limit": 1000, "offset": offset})
        raise_for_problem(response)
        page = response.json()
        for item in page["items"]:
            if item["name"] == name:
                return str(item["id"])
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            break
    created = await api.post("/api/lists", json={"name": name})
    raise_for_problem(created)
    console.print(f"Created list [bold]{name}[/bold]")
    return str(created.json()["id"])


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
class LiveFollower:
    """Keeps job states current from the socket, across reconnects, until `done(states)` is true."""

    url: str
    token: str
    on_change: Callable[[dict[str, dict[str, Any]]], None]
    done: Callable[[dict[str, dict[str, Any]]], bool]
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_seq: int | None = None
    reconnects: int = 0

    async def run(self) -> dict[str, dict[str, Any]]:
        delay = BACKOFF_INITIAL_S
        while True:
            try:
                if await self.session():
                    return self.states
                delay = BACKOFF_INITIAL_S
            except websockets.ConnectionClosed as closed:
                if closed.rcvd is not None and closed.rcvd.code == CLOSE_UNAUTHENTICATED:
                    raise ClientError("the server refused the token (4401)") from closed
            except (OSError, websockets.InvalidHandshake, TimeoutError):
                pass
            self.reconnects += 1
            await asyncio.sleep(random.uniform(0, delay))  # full jitter: a restarted server isn't stampeded
            delay = min(delay * 2, BACKOFF_MAX_S)

    async def session(self) -> bool:
        async with websockets.connect(self.url, open_timeout=10) as ws:
            await ws.send(json.dumps({"type": "hello", "token": self.token, "after": self.last_seq}))
            async for raw in ws:
                if self.handle(json.loads(raw)):
                    return True
        return False

    def handle(self, frame: dict[str, Any]) -> bool:
        kind = frame.get("type")
        if kind == "snapshot":
            self.states = {job["job_id"]: job for job in frame["jobs"]}
            self.last_seq = frame["seq"]
        elif kind == "ready":
            self.last_seq = frame["seq"]
        elif kind == "event":
            if self.last_seq is not None and frame["seq"] <= self.last_seq:
                return False  # already seen (a replay overlapping what we had)
            self.last_seq = frame["seq"]
            self.states[frame["job_id"]] = frame
        else:
            return False
        self.on_change(self.states)
        return self.done(self.states)


class OutcomeBarColumn(BarColumn):
    """A bar in its job's colour: blue while running, then green, yellow, red or magenta by outcome."""

    def render(self, task: Task) -> ProgressBar:
        style = OUTCOME_STYLES.get(task.fields.get("status", ""), "blue")
        return ProgressBar(
            total=max(0, task.total) if task.total is not None else None,
            completed=max(0, task.completed),
            width=None if self.bar_width is None else max(1, self.bar_width),
            pulse=not task.started,
            animation_time=task.get_time(),
            style="bar.back",
            complete_style=style,
            finished_style=style,
        )


@dataclass
class JobLabels:
    """Labels a person recognises a job by: its source and list ("links.csv into Music"), with its start
    time when another job reads the same; never an id prefix, which collides."""

    list_names: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    def label(self, state: dict[str, Any]) -> str:
        job_id = state["job_id"]
        if job_id not in self.labels:
            list_name = self.list_names.get(state.get("list_id") or "", "a deleted list")
            base = f"{state.get('source') or state.get('kind') or 'job'} into {list_name}"
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


class JobBars:
    """One rich progress bar per job, labelled by its source and list, coloured by its outcome."""

    def __init__(self, progress: Progress, labels: JobLabels | None = None) -> None:
        self.progress = progress
        self.labels = labels or JobLabels()
        self.tasks: dict[str, TaskID] = {}

    def show(self, states: dict[str, dict[str, Any]]) -> None:
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
            self.progress.update(
                self.tasks[job_id],
                total=max(state["total"], 1),
                completed=state["processed"],
                status=state["status"],
                failed=state["failed"],
                rate=f"{rate:.1f}/s" if rate else "",
                eta=f"ETA {eta}s" if eta and state["status"] not in TERMINAL else "",
            )


def progress_display() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        OutcomeBarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("[red]{task.fields[failed]} failed"),
        TextColumn("{task.fields[rate]} {task.fields[eta]}"),
        TextColumn("{task.fields[status]}"),
        console=console,
    )


async def list_names(api: httpx.AsyncClient) -> dict[str, str]:
    """Every list's name by id (for labels)."""
    names: dict[str, str] = {}
    while True:
        response = await api.get("/api/lists", params={"limit": 1000, "offset": len(names)})
        raise_for_problem(response)
        page = response.json()
        names.update({str(item["id"]): item["name"] for item in page["items"]})
        if not page["items"] or len(names) >= page["total"]:
            return names


async def import_file(server: str, token: str, path: Path, list_name: str) -> int:
    """Upload, then follow the job live; the exit code says how it ended."""
    async with api_client(server, token) as api:
        list_id = await find_or_create_list(api, list_name)
        result = await upload(api, list_id, path)
    console.print(
        f"accepted {result['accepted']}, duplicates {result['duplicates']}, invalid {len(result['invalid'])}"
    )
    for line in result["invalid"][:20]:
        console.print(f"  line {line['line']}: {line['reason']} ({line['value']})")
    job = result["job"]
    if job is None:
        console.print("Nothing new to fetch: every video is already in the list.")
        return 0
    job_id = job["id"]
    with progress_display() as progress:
        bars = JobBars(progress, JobLabels({list_id: list_name}))
        follower = LiveFollower(
            websocket_url(server),
            token,
            on_change=lambda states: bars.show({job_id: states[job_id]} if job_id in states else {}),
            done=lambda states: states.get(job_id, {}).get("status") in TERMINAL,
        )
        states = await follower.run()
    final = states[job_id]
    style = OUTCOME_STYLES.get(final["status"], "")
    console.print(f"[{style}]{final['status']}[/{style}]: {final.get('message') or ''}")
    if final.get("error") and final["error"] not in (final.get("message") or ""):
        console.print(f"[red]last error: {final['error']}")
    return EXIT_CODES.get(final["status"], EXIT_CODES["failed"])


async def watch(server: str, token: str) -> int:
    """Show every job live until interrupted, each labelled by its source and list."""
    async with api_client(server, token) as api:
        labels = JobLabels(await list_names(api))
    with progress_display() as progress:
        bars = JobBars(progress, labels)
        follower = LiveFollower(websocket_url(server), token, on_change=bars.show, done=lambda _: False)
        await follower.run()
    return 0

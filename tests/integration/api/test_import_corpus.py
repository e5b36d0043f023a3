"""The import corpus (tests/data/imports/manifest.toml) through the real `POST /api/lists/{id}/imports`.

Every entry, committed file or generated full-size input, is posted as a multipart upload and as a raw
body. Each answer must be the expected status (never a 5xx) with the expected counts, ids and per-line
reasons, or an error naming the problem; a refused import, an all-invalid one and an all-duplicate one
must leave every written table exactly as it was (no partial import).
"""

from __future__ import annotations

import asyncio
import mimetypes
import string
import time
import tomllib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from litestar.testing import AsyncTestClient
from litestar.types import HTTPReceiveMessage, HTTPScope, Message, Receive, Send
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.api.imports import MULTIPART_OVERHEAD
from app.asgi import create_app
from app.settings import Settings
from testkit.accounts import Account, create_account
from tests.conftest import scratch_database
from tests.integration.api.helpers import (
    WRITTEN_TABLES,
    Client,
    Sessions,
    create_list,
    fetch_all,
    import_ids,
    post_import,
)

CORPUS = Path(__file__).parents[2] / "data" / "imports"
MANIFEST = CORPUS / "manifest.toml"
NOT_SAMPLES = frozenset({"README.md", ".gitattributes", "manifest.toml"})
MODES = ("upload", "body")
VALUE_MAX = 200
UTF8_BOM = b"\xef\xbb\xbf"
"""An invalid line's value is cut to this many characters in the answer."""

# ---------------------------------------------------------------------------------------------------------
# Generated full-size inputs (never committed): name -> function of the manifest's parameters
# ---------------------------------------------------------------------------------------------------------

ID_ALPHABET = string.ascii_letters + string.digits + "-_"
RICK, PSY, ZOO = "dQw4w9WgXcQ", "9bZkp7q19f0", "jNQXAC9IVRw"

Generated = tuple[bytes, list[str]]
"""The input and the distinct video ids it holds, in order."""


def numbered_id(number: int) -> str:
    """A distinct valid video id per number (ten base-64 digits after a fixed letter)."""
    return "g" + "".join(ID_ALPHABET[(number >> (6 * digit)) & 63] for digit in range(10))


def watch_links(rows: int) -> Generated:
    ids = [numbered_id(number) for number in range(rows)]
    data = "url\n" + "".join(f"https://www.youtube.com/watch?v={video_id}\n" for video_id in ids)
    return data.encode(), ids


def repeated_line(bytes: int) -> Generated:
    line = f"{RICK}\n".encode()
    return (line * (bytes // len(line) + 1))[:bytes], [RICK]


def long_cells(chars: int) -> Generated:
    data = (
        "url,note\n"
        f"https://youtu.be/{RICK},{'n' * chars}\n"
        f"https://www.youtube.com/watch?v={ZOO}&pad={'p' * chars},ok\n"
        f"{'g' * chars},junk\n"
        f"https://youtu.be/{PSY},short\n"
    )
    return data.encode(), [RICK, ZOO, PSY]


GENERATORS: dict[str, Callable[..., Generated]] = {
    "watch_links": watch_links,
    "repeated_line": repeated_line,
    "long_cells": long_cells,
}
GENERATOR_PARAMETERS = {"watch_links": {"rows"}, "repeated_line": {"bytes"}, "long_cells": {"chars"}}

# ---------------------------------------------------------------------------------------------------------
# The manifest
# ---------------------------------------------------------------------------------------------------------

ENTRY_KEYS = {
    "name",
    "about",
    "status",
    "ids",
    "accepted",
    "duplicates",
    "invalid",
    "error",
    "existing",
    "modes",
    "blank",
    "skipped",
}


@dataclass(frozen=True)
class ExpectedInvalid:
    line: int
    reason: str
    """A fragment of the reason."""
    value: str | None
    """The exact value reported, when the manifest gives it."""


@dataclass(frozen=True)
class Entry:
    name: str
    about: str
    status: int
    ids: tuple[str, ...] | None
    """The distinct video ids the input holds (for generated inputs: None, the generator knows them)."""
    accepted: int | None
    duplicates: int
    invalid: tuple[ExpectedInvalid, ...]
    error: tuple[str, ...]
    """Fragments of the error's detail, all present."""
    existing: tuple[str, ...]
    """Video ids put into the list before the import."""
    modes: tuple[str, ...]
    generator: str | None
    parameters: dict[str, Any]
    blank: int | None
    """Lines of nothing but spaces and separators, when the manifest gives them."""
    skipped: int | None
    """Header, comment and Takeout-detail lines (and a cell's further lines), when the manifest gives them."""

    def read(self) -> Generated:
        if self.generator is not None:
            return GENERATORS[self.generator](**self.parameters)
        path = CORPUS / self.name
        assert path.is_file(), f"{self.name} is in manifest.toml but not in {CORPUS}"
        return path.read_bytes(), list(self.ids or ())


def parse_entry(raw: dict[str, Any], *, generated: bool) -> Entry:
    name = raw.get("name", "?")
    generator = raw.get("generator") if generated else None
    parameter_names = GENERATOR_PARAMETERS.get(generator or "", set())
    unknown = set(raw) - ENTRY_KEYS - ({"generator"} | parameter_names if generated else set())
    assert not unknown, f"{name}: unknown keys {sorted(unknown)} in manifest.toml"
    if generated:
        assert generator in GENERATORS, f"{name}: unknown generator {generator!r}"
    status = raw["status"]
    assert status in {200, 202, 413, 422}, f"{name}: unexpected status {status}"
    if status in {200, 202}:
        assert "ids" in raw or generated, f"{name}: an accepted input lists its ids"
        assert "error" not in raw, f"{name}: an accepted input has no error"
    else:
        assert raw.get("error"), f"{name}: a refused input names fragments of its error"
    modes = tuple(raw.get("modes", MODES))
    assert modes and set(modes) <= set(MODES), f"{name}: modes are among {MODES}"
    return Entry(
        name=name,
        about=raw["about"],
        status=status,
        ids=tuple(raw["ids"]) if "ids" in raw else None,
        accepted=raw.get("accepted"),
        duplicates=raw.get("duplicates", 0),
        invalid=tuple(
            ExpectedInvalid(line=item["line"], reason=item["reason"], value=item.get("value"))
            for item in raw.get("invalid", [])
        ),
        error=tuple(raw.get("error", ())),
        existing=tuple(raw.get("existing", ())),
        modes=modes,
        generator=generator,
        parameters={key: raw[key] for key in parameter_names if key in raw},
        blank=raw.get("blank"),
        skipped=raw.get("skipped"),
    )


def load_manifest() -> list[Entry]:
    with MANIFEST.open("rb") as manifest:
        raw = tomllib.load(manifest)
    assert set(raw) <= {"file", "generated"}, f"manifest.toml: unknown tables {sorted(set(raw))}"
    return [
        *(parse_entry(item, generated=False) for item in raw.get("file", [])),
        *(parse_entry(item, generated=True) for item in raw.get("generated", [])),
    ]


ENTRIES = load_manifest()


# One database and one running app for the module, not a clone and an app start a test (0.7 s each):
# every test imports into lists of its own user, and `snapshot` compares whole tables before and after
# each import, so sharing them hides nothing.


@pytest.fixture(scope="module")
async def database_url(template_database: str) -> AsyncIterator[str]:
    async with scratch_database("bm_corpus", template_database) as url:
        yield url


@pytest.fixture(scope="module")
def settings(database_url: str) -> Settings:
    # Each entry is imported twice, by one app: its per-user import limit must not answer 429 here.
    return Settings(database_url=database_url, run_workers_in_web=False, imports_per_minute=100_000)


@pytest.fixture(scope="module")
async def session_maker(settings: Settings) -> AsyncIterator[Sessions]:
    engine = create_async_engine(settings.sqlalchemy_url)
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
async def client(settings: Settings) -> AsyncIterator[Client]:
    async with AsyncTestClient(app=create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
async def alice(session_maker: Sessions) -> Account:
    return await create_account(session_maker, f"alice-{uuid.uuid4().hex[:12]}@example.com")


def test_every_sample_file_has_one_manifest_entry_and_every_entry_its_file() -> None:
    """The corpus cannot drift: each file in tests/data/imports has exactly one entry, each entry a file
    (or a generator, and then no file of that name)."""
    names = [entry.name for entry in ENTRIES]
    assert len(names) == len(set(names)), sorted({name for name in names if names.count(name) > 1})
    on_disk = {path.name for path in CORPUS.iterdir() if path.name not in NOT_SAMPLES}
    listed = {entry.name for entry in ENTRIES if entry.generator is None}
    generated = {entry.name for entry in ENTRIES if entry.generator is not None}
    assert sorted(on_disk - listed) == [], "files without a manifest entry"
    assert sorted(listed - on_disk) == [], "manifest entries without a file"
    assert sorted(generated & on_disk) == [], "generated inputs must not be committed"
    assert all(path.is_file() for path in CORPUS.iterdir()), "the corpus directory holds files only"


# ---------------------------------------------------------------------------------------------------------
# Posting an entry and reading the database
# ---------------------------------------------------------------------------------------------------------


async def post_entry(
    client: Client, account: Account, list_id: str, name: str, data: bytes, mode: str
) -> httpx.Response:
    """As the dashboard's file picker sends it (multipart), or as a script would (raw body)."""
    if mode == "upload":
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return await client.post(
            f"/api/lists/{list_id}/imports",
            files={"file": (name, data, content_type)},
            headers=account.headers,
        )
    content_type = "text/csv" if name.endswith((".csv", ".tsv")) else "text/plain"
    return await post_import(client, account, list_id, data, content_type)


Snapshot = dict[str, tuple[int, str]]


async def snapshot(sessions: Sessions) -> Snapshot:
    """Row count and a digest of every row's content, per written table."""
    snap: Snapshot = {}
    for table in WRITTEN_TABLES:
        rows = await fetch_all(
            sessions,
            f"SELECT count(*) AS n, md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS digest "
            f"FROM {table} AS t",
        )
        snap[table] = (int(rows[0]["n"]), str(rows[0]["digest"]))
    return snap


def counts(snap: Snapshot) -> dict[str, int]:
    return {table: count for table, (count, _) in snap.items()}


def assert_invalid_lines(reported: list[dict[str, Any]], expected: tuple[ExpectedInvalid, ...]) -> None:
    summary = [(line["line"], line["value"][:60], line["reason"]) for line in reported]
    assert [line["line"] for line in reported] == [item.line for item in expected], summary
    for line, item in zip(reported, expected, strict=True):
        assert item.reason in line["reason"], summary
        if item.value is not None:
            assert line["value"] == item.value, summary
    assert all(len(line["value"]) <= VALUE_MAX for line in reported), "values are cut to 200 characters"


def assert_every_line_counted(entry: Entry, data: bytes, lines: dict[str, int], invalid: int) -> None:
    """Each line of the input is accepted, a duplicate, invalid, blank or skipped, and they add up."""
    parts = ("accepted", "duplicates", "invalid", "blank", "skipped")
    assert lines["total"] == len(data.removeprefix(UTF8_BOM).splitlines()), lines
    assert sum(lines[part] for part in parts) == lines["total"], lines
    assert lines["invalid"] == invalid, lines
    if entry.blank is not None:
        assert lines["blank"] == entry.blank, lines
    if entry.skipped is not None:
        assert lines["skipped"] == entry.skipped, lines


async def assert_imported(
    sessions: Sessions,
    entry: Entry,
    list_id: str,
    ids: list[str],
    data: bytes,
    body: dict[str, Any],
    before: Snapshot,
    after: Snapshot,
) -> None:
    """A 202/200 answer: exact counts and reasons, every line counted once; the list holds exactly its old
    and new videos."""
    new_ids = [video_id for video_id in ids if video_id not in entry.existing]
    accepted = len(new_ids) if entry.accepted is None else entry.accepted
    assert accepted == len(new_ids), f"{entry.name}: manifest's accepted disagrees with its ids"
    assert (body["accepted"], body["duplicates"]) == (accepted, entry.duplicates)
    assert (body["lines"]["accepted"], body["lines"]["duplicates"]) == (accepted, entry.duplicates)
    assert_invalid_lines(body["invalid"], entry.invalid)
    assert_every_line_counted(entry, data, body["lines"], len(body["invalid"]))
    rows = await fetch_all(
        sessions, "SELECT youtube_id, status, job_id::text FROM videos WHERE list_id = :id", id=list_id
    )
    assert len(rows) == len(entry.existing) + accepted
    assert {row["youtube_id"] for row in rows} == {*entry.existing, *ids}
    if entry.status == 200:
        assert body["job"] is None
        assert after == before, "an import of known videos only writes nothing"
        return
    job = body["job"]
    assert (job["kind"], job["status"], job["total"], job["list_id"]) == (
        "import",
        "queued",
        accepted,
        list_id,
    )
    added = [row for row in rows if row["youtube_id"] not in entry.existing]
    assert {(row["status"], row["job_id"]) for row in added} == {("pending", job["id"])}
    grown = {table: counts(after)[table] - counts(before)[table] for table in WRITTEN_TABLES}
    assert grown == {**dict.fromkeys(WRITTEN_TABLES, 0), "videos": accepted, "jobs": 1, "saq_jobs": 1}
    assert after["bookmark_lists"] == before["bookmark_lists"]


def assert_refused(
    entry: Entry, data: bytes, body: dict[str, Any], before: Snapshot, after: Snapshot
) -> None:
    """A 413/422 answer names the problem, and not one row changed anywhere; "nothing valid" still counts
    every line."""
    assert body["status_code"] == entry.status
    for fragment in entry.error:
        assert fragment in body["detail"], body["detail"]
    extra = body.get("extra") or {}
    assert_invalid_lines(extra.get("invalid", []), entry.invalid)
    if "invalid" in extra:
        assert_every_line_counted(entry, data, extra["lines"], len(extra["invalid"]))
    assert after == before, "a refused import writes nothing"


@pytest.mark.parametrize("entry", ENTRIES, ids=[entry.name for entry in ENTRIES])
async def test_corpus_entry_gives_its_expected_answer_and_never_a_partial_import(
    entry: Entry,
    client: Client,
    alice: Account,
    session_maker: Sessions,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each input, uploaded and sent as a body, answers its manifest status (no 5xx) with the expected
    ids, counts and reasons or error text; refusals, invalid-only and duplicate-only imports write nothing."""
    data, ids = entry.read()
    for mode in entry.modes:
        target = await create_list(client, alice, f"{entry.name} ({mode})")
        if entry.existing:
            await import_ids(client, alice, target["id"], entry.existing)
        before = await snapshot(session_maker)

        started = time.perf_counter()
        response = await post_entry(client, alice, target["id"], entry.name, data, mode)
        elapsed = time.perf_counter() - started

        assert response.status_code < 500, (mode, response.text[:2000])
        assert response.status_code == entry.status, (mode, response.text[:2000])
        after = await snapshot(session_maker)
        if entry.status in {200, 202}:
            await assert_imported(
                session_maker, entry, target["id"], ids, data, response.json(), before, after
            )
        else:
            assert_refused(entry, data, response.json(), before, after)
        if entry.generator is not None:
            with capsys.disabled():
                print(
                    f"\n[import corpus] {entry.name} ({len(data):,} bytes, {mode}): "
                    f"HTTP {response.status_code} in {elapsed:.2f} s"
                )


# ---------------------------------------------------------------------------------------------------------
# Over the size limit without a Content-Length: the server must stop reading, not buffer it all
# ---------------------------------------------------------------------------------------------------------

CHUNK = f"{RICK}\n".encode() * (64 * 1024 // 12)


@dataclass
class StreamedRequest:
    """One request fed to the app chunk by chunk, counting what the app pulled."""

    chunks: Iterator[bytes]
    pulled: int = 0
    status: int = 0
    body: bytes = b""

    async def receive(self) -> HTTPReceiveMessage:
        chunk = next(self.chunks, b"")
        self.pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunk)}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")


async def stream_to_app(
    client: Client, path: str, headers: dict[str, str], chunks: Iterator[bytes]
) -> StreamedRequest:
    """Call the running app (its own event loop, in the client's portal) with a chunked request body.

    The test client reads a request body whole before the app sees it, so it cannot show how much of a
    body the app reads: this talks ASGI to the app directly.
    """
    request = StreamedRequest(chunks)
    scope = cast(
        "HTTPScope",
        {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
            "client": ("testclient", 50000),
            "server": ("testserver", 80),
        },
    )
    receive: Receive = request.receive
    send: Send = request.send
    await asyncio.to_thread(client.blocking_portal.call, client.app, scope, receive, send)
    return request


FORM_HEAD = (
    b'--corpus\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
    b"Content-Type: text/plain\r\n\r\n"
)
TOTAL = 20 * 1024 * 1024


def twenty_mib(head: bytes = b"") -> Iterator[bytes]:
    if head:
        yield head
    for _ in range(TOTAL // len(CHUNK)):
        yield CHUNK


@pytest.mark.parametrize(
    ("content_type", "head"),
    [
        pytest.param("text/plain", b"", id="raw-body"),
        pytest.param("multipart/form-data; boundary=corpus", FORM_HEAD, id="multipart-upload"),
    ],
)
async def test_twenty_mib_without_content_length_are_refused_once_the_limit_is_read(
    content_type: str,
    head: bytes,
    client: Client,
    alice: Account,
    session_maker: Sessions,
    settings: Settings,
) -> None:
    """20 MiB sent in chunks without a Content-Length: the app stops reading just past the limit (it does
    not buffer the rest), answers 413 naming the limit, leaves no temporary file open, writes nothing."""
    target = await create_list(client, alice)
    before = await snapshot(session_maker)

    request = await stream_to_app(
        client,
        f"/api/lists/{target['id']}/imports",
        {**alice.headers, "content-type": content_type},
        twenty_mib(head),
    )

    assert request.status == 413, request.body
    detail = httpx.Response(413, content=request.body).json()["detail"]
    assert "larger than the limit of 10,485,760 bytes (10 MB)" in detail
    assert request.pulled <= settings.import_max_bytes + MULTIPART_OVERHEAD + len(CHUNK) + len(head)
    assert await snapshot(session_maker) == before


async def test_a_declared_oversize_body_is_refused_before_one_byte_is_read(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """With a Content-Length over the limit, the 413 (giving the size and the limit) comes before the
    app reads any of the body."""
    target = await create_list(client, alice)
    before = await snapshot(session_maker)

    request = await stream_to_app(
        client,
        f"/api/lists/{target['id']}/imports",
        {**alice.headers, "content-type": "text/plain", "content-length": str(TOTAL)},
        twenty_mib(),
    )

    assert request.status == 413, request.body
    detail = httpx.Response(413, content=request.body).json()["detail"]
    assert "20,971,520 bytes, over the limit of 10,485,760 bytes (10 MB)" in detail
    assert request.pulled == 0
    assert await snapshot(session_maker) == before

"""Schemathesis against the app's OpenAPI document, with the app under uvicorn (a real server).

Every operation gets the schema's examples, coverage cases (boundaries, missing and malformed parameters,
wrong types) and Hypothesis fuzzing, sent by `requests` to a uvicorn subprocess on a database of its own,
as a real user. Each answer must not be a server error and must be one the schema declares: status code,
content type, body and headers (schemathesis' built-in checks, all on but `allow_header_conformance`,
see CONFIG); bad input must be refused, good input accepted, and a missing or bad token must be a 401.

A real server rather than schemathesis' ASGI transport: the app's lifespan opens asyncpg pools, a LISTEN
connection and the SAQ queue on its event loop, and the synchronous ASGI client would run that loop in a
thread beside pytest-asyncio's (keep the app's connections away from test code: they belong to another event loop); a
subprocess also checks what clients really get from uvicorn.

The schema is built when the module is collected (schemathesis makes one test per operation then); that
the server serves the very same document is a test of its own. The WebSocket (`/api/ws/progress`) and the
HTML dashboard are not in the document, so not fuzzed here.
"""

from __future__ import annotations

import copy
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import hypothesis.strategies as st
import pytest
import schemathesis
from schemathesis import Case, HookContext
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.asgi import create_app
from app.services import jobs as job_service
from app.services import users as user_service
from app.settings import Settings, sqlalchemy_url
from db.models import ApiToken, BookmarkList, Job, JobStatus, Video, VideoStatus
from testkit.harness import READ_TIMEOUT_S, ServerProcess, app_env
from tests.conftest import ADMIN_DSN, scratch_database

pytestmark = pytest.mark.slow  # left out of scripts/quick; always in scripts/test

MAX_EXAMPLES = 25
"""Fuzzed cases per operation, on top of the schema's examples and the coverage phase's cases."""
SEED = 20251129
"""Fixed, so a CI run is reproducible; change it to draw other cases."""
TOKEN = user_service.new_token_secret()
"""The fuzzing user's token, made up here (and stored by `seed`) so schemathesis' config can carry it:
then it knows which header is the credential, and drops or spoils it on purpose (`ignored_auth`)."""


def _ids(prefix: int, count: int) -> tuple[uuid.UUID, ...]:
    return tuple(uuid.UUID(int=(prefix << 64) + n + 1) for n in range(count))


@dataclass(frozen=True)
class Rows:
    """Ids of the rows the fuzzing user owns, fixed here so path parameters can name them."""

    lists: tuple[uuid.UUID, ...] = _ids(0x5EED_0001, 2)
    """Lists that stay: the first has a queued job, the second a failed one (3 videos each)."""
    disposable_lists: tuple[uuid.UUID, ...] = _ids(0x5EED_0002, 4)
    """Only `DELETE /api/lists/{id}` gets these, so a delete does not starve the other operations."""
    job_videos: tuple[uuid.UUID, ...] = _ids(0x5EED_0003, 6)
    """The videos of the two jobs; never deleted, so `cancel` and `retry` have something to act on."""
    disposable_videos: tuple[uuid.UUID, ...] = _ids(0x5EED_0005, 4)
    """Videos of the second list without a job: only `DELETE /api/videos/{id}` gets these."""
    jobs: tuple[uuid.UUID, ...] = _ids(0x5EED_0004, 2)
    """A queued job and a failed one."""
    retry_lists: tuple[uuid.UUID, ...] = _ids(0x5EED_0006, 2)
    """Each with one failed video of no job, named only by the examples of `retryFailedOfList` (the
    first) and `retryVideos` (the second's video): what the other retries take cannot starve them."""
    retry_videos: tuple[uuid.UUID, ...] = _ids(0x5EED_0007, 2)

    def pool(self, method: str, parameter: str) -> tuple[uuid.UUID, ...]:
        if parameter == "list_id":
            return self.disposable_lists if method.upper() == "DELETE" else self.lists
        return {"video_id": self.disposable_videos, "job_id": self.jobs}.get(parameter, ())

    def example(self, operation_id: str, method: str, parameter: str) -> uuid.UUID | None:
        """The id the schema's example of an operation names: one the operation can act on."""
        if parameter == "job_id":  # a queued job can be cancelled, a failed one retried
            return self.jobs[0] if operation_id == "cancelJob" else self.jobs[1]
        if operation_id == "retryFailedOfList":
            return self.retry_lists[0]
        pool = self.pool(method, parameter)
        return pool[-1] if pool else None


ROWS = Rows()
YOUTUBE_IDS = ("9bZkp7q19f0", "kJQP7kiw5Fk", "OPf0YbXqDm0", "JGwWNGJdvx8", "RgKAFK5djSk", "fJ9rUzIMcZQ")
"""Not the ids of the schema's examples (those get added by `addVideo` and `createImport`)."""
DISPOSABLE_YOUTUBE_IDS = ("hT_nvWreIhg", "CevxZvSJLk8", "09R8_2nJtjg", "YQHsXMglC9A")
RETRY_YOUTUBE_IDS = ("e-ORhEE9VVg", "uelHwf8o7_U")


def app_document() -> dict[str, Any]:
    """The OpenAPI document the app serves at /schema/openapi.json (building the app connects nowhere)."""
    app = create_app(Settings(database_url=ADMIN_DSN, run_workers_in_web=False))
    document: dict[str, Any] = app.openapi_schema.to_schema()
    return document


def with_seeded_examples(document: dict[str, Any]) -> dict[str, Any]:
    """A copy whose path parameters have an example naming a seeded row: schemathesis' examples phase
    sends those (with the examples of the bodies), so every operation is also tried on a row it can use."""
    document = copy.deepcopy(document)
    for methods in document["paths"].values():
        for method, operation in methods.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    example = ROWS.example(operation["operationId"], method, parameter["name"])
                    if example is not None:
                        parameter["example"] = str(example)
            if operation["operationId"] == "retryVideos":
                body = operation["requestBody"]["content"]["application/json"]
                body["example"] = {"ids": [str(ROWS.retry_videos[1])]}
    return document


def accepts_strings(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "string" or any(
        accepts_strings(branch) for branch in schema.get("oneOf", [])
    )


def string_fields(document: dict[str, Any]) -> set[str]:
    """`query.<name>` and `body.<field>` of every string the API takes (schemathesis' binding keys)."""
    fields: set[str] = set()
    components = document["components"]["schemas"]
    for methods in document["paths"].values():
        for operation in methods.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query" and accepts_strings(parameter["schema"]):
                    fields.add(f"query.{parameter['name']}")
            for content in operation.get("requestBody", {}).get("content", {}).values():
                reference = content["schema"].get("$ref", "")
                properties = components.get(reference.rsplit("/", 1)[-1], {}).get("properties", {})
                fields.update(f"body.{name}" for name, field in properties.items() if accepts_strings(field))
    return fields


SEMANTIC_422 = ["2xx", "401", "404", "409", "422", "429"]
"""Answers to a well-formed request whose content is unusable: a URL that is not a YouTube video, a file
of no links. JSON Schema cannot say "a YouTube link", and the API answers 422 then (README, "HTTP API")."""

DOCUMENT = app_document()
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
        "request-timeout": READ_TIMEOUT_S,
        "auth": {"openapi": {"BearerToken": {"bearer": TOKEN}}},
        # Extra query parameters are ignored, as HTTP APIs do (Litestar's behaviour): not a negative case.
        # (Unknown fields of JSON bodies are refused, and the schema says so: `additionalProperties: false`.)
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "database": "none",
            "allow-extra-parameters": False,
            # Now and then a value that has broken servers before, wherever an integer goes (below for strings:
            # these type-wide bindings reach neither bodies nor `oneOf` parameters).
            "dictionaries": {"integer": {"dictionary": "huge-integers", "probability": 0.1}},
        },
        "parameters": {
            field: {"dictionary": "hostile-strings", "probability": 0.2} for field in string_fields(DOCUMENT)
        },
        # Off until app/asgi.py works around a Litestar 2.25 bug: the automatic OPTIONS answer of a path with
        # several handlers lists only the first handler's methods (`OPTIONS /api/lists` → `Allow: OPTIONS,
        # POST`). Every other built-in check is on.
        "checks": {"allow_header_conformance": {"enabled": False}},
        "dictionaries": {
            # NUL (Postgres text cannot hold it), LIKE wildcards and escape, a BOM, the last code point, a blank.
            "hostile-strings": {"values": ["\x00", "a\x00b", "%", "_", "\\", "\ufeff", "\U0010ffff", " "]},
            # The largest Postgres bigint, just past it, and far past it.
            "huge-integers": {"values": [2**63 - 1, 2**63, 2**64, 10**30]},
        },
        "operations": [
            {
                "include-operation-id": operation_id,
                "checks": {"positive_data_acceptance": {"expected-statuses": SEMANTIC_422}},
            }
            for operation_id in ("addVideo", "createImport")
        ],
    }
)
schema = schemathesis.openapi.from_dict(with_seeded_examples(DOCUMENT), config=CONFIG)


@schema.hook
def flatmap_path_parameters(
    context: HookContext, path_parameters: dict[str, Any] | None
) -> st.SearchStrategy[Any]:
    """Now and then a drawn UUID is swapped for the id of a row the user owns, so the operation gets past
    its 404. Only well-formed UUIDs are swapped (for another UUID): a negative case stays negative."""
    if not path_parameters:
        return st.just(path_parameters)
    method = context.operation.method if context.operation is not None else ""
    choices: dict[str, st.SearchStrategy[Any]] = {}
    for name, value in path_parameters.items():
        pool = ROWS.pool(method, name)
        choices[name] = (
            st.sampled_from((value, *map(str, pool))) if pool and is_uuid(value) else st.just(value)
        )
    return st.fixed_dictionaries(choices)


def is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Target:
    server: ServerProcess
    log_path: Path
    statuses: defaultdict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    """Status codes answered per operation, to show the fuzzing got past the 4xx answers."""


@pytest.fixture(scope="module")
async def database(template_database: str) -> AsyncIterator[str]:
    """One database for the whole module (the conftest's `database_url` is per test)."""
    async with scratch_database("bm_fuzz", template_database) as url:
        yield url


async def seed(dsn: str) -> None:
    """The fuzzing user (with `TOKEN`), its lists, videos and jobs (with `ROWS`' ids), and some history."""
    engine = create_async_engine(sqlalchemy_url(dsn))
    try:
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        async with sessions() as session:
            user = (await user_service.create_user(session, "fuzzer@example.com")).id
            session.add(ApiToken(user_id=user, name="fuzz", token_hash=user_service.hash_token(TOKEN)))
            names = [("Main", lid) for lid in ROWS.lists] + [
                ("Disposable", lid) for lid in ROWS.disposable_lists
            ]
            names += [("Retry", lid) for lid in ROWS.retry_lists]
            session.add_all(BookmarkList(id=lid, user_id=user, name=name) for name, lid in names)
            queued, failed = ROWS.jobs
            session.add(Job(id=queued, user_id=user, list_id=ROWS.lists[0], kind="import", total=3))
            session.add(
                Job(id=failed, user_id=user, list_id=ROWS.lists[1], kind="import", status=JobStatus.FAILED.value,
                    total=3, processed=3, failed=3, last_error="fuzz")
            )  # fmt: skip
            await session.flush()
            for n, (video_id, youtube_id) in enumerate(zip(ROWS.job_videos, YOUTUBE_IDS, strict=True)):
                first_half = n < len(ROWS.job_videos) // 2
                session.add(
                    Video(id=video_id, user_id=user, list_id=ROWS.lists[0 if first_half else 1],
                          youtube_id=youtube_id, job_id=queued if first_half else failed,
                          status=(VideoStatus.PENDING if first_half else VideoStatus.FAILED).value)
                )  # fmt: skip
            session.add_all(
                Video(id=video_id, user_id=user, list_id=ROWS.lists[1], youtube_id=youtube_id,
                      status=VideoStatus.READY.value, title=f"Video {youtube_id}")
                for video_id, youtube_id in zip(ROWS.disposable_videos, DISPOSABLE_YOUTUBE_IDS, strict=True)
            )  # fmt: skip
            session.add_all(
                Video(id=video_id, user_id=user, list_id=list_id, youtube_id=youtube_id,
                      status=VideoStatus.FAILED.value, error="fuzz")
                for video_id, list_id, youtube_id in zip(
                    ROWS.retry_videos, ROWS.retry_lists, RETRY_YOUTUBE_IDS, strict=True
                )
            )  # fmt: skip
            for job_id in ROWS.jobs:  # history for the progress endpoints
                await job_service.write_event(session, await job_service.get_owned_job(session, user, job_id))
            await session.commit()
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
async def target(database: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Target]:
    await seed(database)
    log_path = tmp_path_factory.mktemp("fuzz") / "server.log"
    # Fuzzing sends thousands of requests from one address, many with bad tokens, many of them imports:
    # lift both per-minute limits, or the rest of the run would be 429s (a declared answer, but no test).
    env = app_env(database, AUTH_FAILURES_PER_MINUTE="1000000", IMPORTS_PER_MINUTE="1000000")
    server = ServerProcess(env=env, log_path=log_path)
    await server.start()
    try:
        yield Target(server=server, log_path=log_path)
    finally:
        await server.stop()


@schema.parametrize()
def test_api_conforms_to_its_openapi(case: Case[Any], target: Target) -> None:
    """No 5xx, and every answer is one the schema declares (status, content type, body, headers)."""
    response = case.call_and_validate(base_url=target.server.base_url)
    if case.method.upper() == case.operation.method.upper():  # not the probes of other methods
        target.statuses[case.operation.label][response.status_code] += 1


def test_fuzzing_got_through_to_every_operation(target: Target) -> None:
    """Every fuzzed operation answered 2xx at least once (a broken token or seed would make the run a
    vacuous tour of 401s and 404s, all conforming), and the server logged no traceback."""
    if not target.statuses:
        pytest.skip("run with test_api_conforms_to_its_openapi: it records the answers")
    never_succeeded = {
        label: dict(counts)
        for label, counts in target.statuses.items()
        if not any(200 <= status < 300 for status in counts)
    }
    assert never_succeeded == {}
    assert "Traceback" not in target.log_path.read_text(errors="replace")


async def test_server_serves_the_fuzzed_document(target: Target) -> None:
    async with httpx.AsyncClient(base_url=target.server.base_url, timeout=READ_TIMEOUT_S) as client:
        response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    assert response.json() == DOCUMENT


HOSTILE_BODIES: dict[str, tuple[str, bytes]] = {
    "array nested 100,000 deep": ("application/json", b"[" * 100_000 + b"]" * 100_000),
    "field nested 5,000 deep": ("application/json", b'{"name": ' + b'{"a":' * 5_000 + b"1" + b"}" * 5_001),
    "2 MB string": ("application/json", b'{"name": "' + b"x" * 2_000_000 + b'", "url": "x"}'),
    "NUL-laden strings": (
        "application/json",
        b'{"name": "a\\u0000b", "description": "\\u0000", "url": "\\u0000"}',
    ),
    "number of 5,000 digits": ("application/json", b'{"name": 1' + b"0" * 5_000 + b"}"),
    "NUL bytes as text": ("text/plain", b"\x00" * 1_000),
}
"""Bodies past what JSON Schema describes (depth, size, NUL), each sent to every operation that takes one."""
HOSTILE_VALUES = ["\x00", "a\x00b", "9" * 400, "-1", "1e309", "[" * 1_000, "\ufeff"]
"""Sent as every query parameter and every path parameter of every operation."""


@pytest.mark.usefixtures("target")
async def test_hostile_bodies_and_parameters_never_get_a_server_error(target: Target) -> None:
    """Every operation of the document, given nested, huge and NUL-laden bodies, and NUL-laden, huge and
    malformed values for each of its parameters, answers a 4xx (or a 2xx), never a 5xx, and the server
    logs nothing at ERROR."""
    answers: Counter[int] = Counter()
    server_errors: list[str] = []
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=target.server.base_url, timeout=READ_TIMEOUT_S) as client:

        async def send(method: str, url: str, label: str, **kwargs: Any) -> None:
            response = await client.request(
                method, url, headers={**headers, **kwargs.pop("headers", {})}, **kwargs
            )
            answers[response.status_code] += 1
            if response.status_code >= 500:
                server_errors.append(f"{method} {url} ({label}): {response.status_code}")

        for path, methods in DOCUMENT["paths"].items():
            for method, operation in methods.items():
                parameters = operation.get("parameters", [])
                seeded = {
                    p["name"]: str(ROWS.example(operation["operationId"], method, p["name"]))
                    for p in parameters
                    if p["in"] == "path"
                }
                url = path.format(**seeded)
                for name in seeded:
                    for value in HOSTILE_VALUES:
                        hostile = path.format(**{**seeded, name: quote(value, safe="")})
                        await send(method.upper(), hostile, f"path {name}={value[:10]!r}")
                if method.upper() == "DELETE":
                    continue  # only with hostile ids: a valid one would delete a row the fuzzing still needs
                for parameter in (p for p in parameters if p["in"] == "query"):
                    for value in HOSTILE_VALUES:
                        label = f"query {parameter['name']}={value[:10]!r}"
                        await send(method.upper(), url, label, params={parameter["name"]: value})
                if "requestBody" in operation:
                    for label, (content_type, body) in HOSTILE_BODIES.items():
                        await send(
                            method.upper(), url, label, content=body, headers={"Content-Type": content_type}
                        )

    assert server_errors == []
    assert sum(answers.values()) > 200 and any(400 <= status < 500 for status in answers)
    log = target.log_path.read_text(errors="replace")
    assert "Traceback" not in log and "ERROR" not in log


def test_hostile_strings_reach_every_string_field() -> None:
    assert string_fields(DOCUMENT) >= {"query.q", "body.name", "body.description", "body.url"}


def test_path_parameter_pools() -> None:
    assert ROWS.pool("DELETE", "list_id") == ROWS.disposable_lists
    assert ROWS.pool("GET", "list_id") == ROWS.lists
    assert ROWS.pool("GET", "job_id") == ROWS.jobs
    assert ROWS.pool("GET", "limit") == ()
    assert ROWS.pool("DELETE", "video_id") == ROWS.disposable_videos
    ids = [*ROWS.lists, *ROWS.disposable_lists, *ROWS.job_videos, *ROWS.disposable_videos, *ROWS.jobs]
    assert len(set(ids)) == len(ids) == 18

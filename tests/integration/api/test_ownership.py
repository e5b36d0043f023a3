"""A user never reads or changes another user's rows, on every route the OpenAPI schema lists.

The routes are walked from `/schema/openapi.json`, so a new route is covered the day it is added: a route
with a path parameter or a request body this file does not know how to fill fails the walk until it does.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text

from testkit.accounts import Account
from tests.integration.api.helpers import Client, Sessions, create_list, import_ids

HTTP_METHODS = {"get", "post", "put", "patch", "delete"}
PATH_PARAMETER = re.compile(r"{(\w+)}")

REQUEST_BODIES: dict[str, dict[str, Any]] = {
    "updateList": {"json": {"name": "Taken over"}},
    "addVideo": {"json": {"url": "https://youtu.be/9bZkp7q19f0"}},
    "createImport": {
        "content": b"https://youtu.be/9bZkp7q19f0\nhttps://youtu.be/jNQXAC9IVRw\n",
        "headers": {"Content-Type": "text/plain"},
    },
}
"""A minimal valid body per operation that needs one, so a 404 is about ownership, not a bad body."""

RAW_BODY_OPERATIONS = {"createImport"}
"""Operations that read the raw body themselves (the schema shows no requestBody for them)."""

EXPECTED_OPERATIONS = {
    "getList",
    "updateList",
    "deleteList",
    "listVideos",
    "addVideo",
    "exportList",
    "createImport",
    "deleteVideo",
    "getJob",
    "cancelJob",
    "retryJob",
}
"""Operations known today; the walk must find at least these (it finds new ones by itself)."""

OWNED_TABLES = {
    "users": "id",
    "api_tokens": "user_id",
    "bookmark_lists": "user_id",
    "videos": "user_id",
    "jobs": "user_id",
    "progress_events": "user_id",
    "progress_streams": "user_id",
}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    has_request_body: bool
    query_parameters: tuple[str, ...]

    @property
    def path_parameters(self) -> list[str]:
        return PATH_PARAMETER.findall(self.path)


@dataclass(frozen=True)
class AliceWorld:
    """Alice's rows: a list with a queued job and a cancelled (retryable) job, and their videos."""

    ids: dict[str, list[str]]
    secrets: list[str]
    """Every identifier of Alice's that must never appear in an answer to Bob."""


async def operations(client: Client) -> list[Operation]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    found = []
    for path, methods in response.json()["paths"].items():
        for method, spec in methods.items():
            if method not in HTTP_METHODS:
                continue
            found.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    operation_id=spec.get("operationId", f"{method} {path}"),
                    has_request_body="requestBody" in spec,
                    query_parameters=tuple(
                        p["name"] for p in spec.get("parameters", []) if p["in"] == "query"
                    ),
                )
            )
    return found


async def build_alice_world(client: Client, alice: Account) -> AliceWorld:
    music = await create_list(client, alice, "Alice's music")
    queued = (await import_ids(client, alice, music["id"], ["alice000001", "alice000002"]))["job"]
    cancelled = (await import_ids(client, alice, music["id"], ["alice000003"]))["job"]
    response = await client.post(f"/api/jobs/{cancelled['id']}/cancel", headers=alice.headers)
    assert response.status_code == 202, response.text
    videos = (await client.get(f"/api/lists/{music['id']}/videos", headers=alice.headers)).json()["items"]
    ids = {
        "list_id": [music["id"]],
        "job_id": [queued["id"], cancelled["id"]],
        "video_id": [videos[0]["id"], videos[2]["id"]],
    }
    secrets = [
        str(alice.user_id),
        alice.email,
        "Alice's music",
        *(video["youtube_id"] for video in videos),
        *itertools.chain.from_iterable(ids.values()),
    ]
    return AliceWorld(ids=ids, secrets=secrets)


async def dump(sessions: Sessions, account: Account) -> dict[str, list[str]]:
    """Every row the account owns, as JSON text, plus SAQ's queue: what a foreign request must not change."""
    rows: dict[str, list[str]] = {}
    async with sessions() as session:
        for table, owner in OWNED_TABLES.items():
            result = await session.execute(
                text(f"SELECT row_to_json(t)::text FROM {table} AS t WHERE {owner} = :owner ORDER BY 1"),
                {"owner": account.user_id},
            )
            rows[table] = list(result.scalars())
        saq = await session.execute(text("SELECT key || ':' || status FROM saq_jobs ORDER BY 1"))
        rows["saq_jobs"] = list(saq.scalars())
    return rows


def fill_path(operation: Operation, values: dict[str, str]) -> str:
    return operation.path.format(**values)


def request_kwargs(operation: Operation, account: Account) -> dict[str, Any]:
    body = REQUEST_BODIES.get(operation.operation_id, {})
    kwargs = {key: value for key, value in body.items() if key != "headers"}
    return {"headers": {**account.headers, **body.get("headers", {})}, **kwargs}


@pytest.fixture
async def alice_world(client: Client, alice: Account) -> AliceWorld:
    return await build_alice_world(client, alice)


async def test_the_walk_knows_every_parameter_and_body(client: Client) -> None:
    """Every path parameter and request body in the schema is one this file can fill with real ids."""
    found = await operations(client)
    with_ids = {op.operation_id for op in found if op.path_parameters}
    assert with_ids >= EXPECTED_OPERATIONS
    unknown = [
        (op.operation_id, name)
        for op in found
        for name in op.path_parameters
        if name not in {"list_id", "job_id", "video_id"}
    ]
    assert unknown == [], "teach test_ownership.py how to fill these path parameters"
    missing_bodies = [
        op.operation_id
        for op in found
        if op.path_parameters
        and (op.has_request_body or op.operation_id in RAW_BODY_OPERATIONS)
        and op.operation_id not in REQUEST_BODIES
    ]
    assert missing_bodies == [], "add a minimal valid body for these operations to REQUEST_BODIES"


async def test_alices_ids_are_real(client: Client, alice: Account, alice_world: AliceWorld) -> None:
    """Alice herself reads every id-taking GET route with these ids (so Bob's 404s are about ownership)."""
    for op in await operations(client):
        if op.method != "GET" or not op.path_parameters:
            continue
        for combo in itertools.product(*(alice_world.ids[name] for name in op.path_parameters)):
            path = fill_path(op, dict(zip(op.path_parameters, combo, strict=True)))
            response = await client.get(path, headers=alice.headers)
            assert response.status_code == 200, (op.operation_id, path, response.text)


async def test_every_route_with_an_id_is_404_for_another_user_and_changes_nothing(
    client: Client, alice: Account, bob: Account, session_maker: Sessions, alice_world: AliceWorld
) -> None:
    """Bob calling any id-taking route with Alice's ids gets 404 (not 403) and Alice's rows stay identical."""
    await create_list(client, bob, "Bob's")
    before = await dump(session_maker, alice)
    assert all(before[table] for table in ("bookmark_lists", "videos", "jobs", "progress_events", "saq_jobs"))
    failures: list[str] = []
    tried: set[str] = set()
    for op in await operations(client):
        if not op.path_parameters or any(name not in alice_world.ids for name in op.path_parameters):
            continue  # unknown parameters fail test_the_walk_knows_every_parameter_and_body
        for combo in itertools.product(*(alice_world.ids[name] for name in op.path_parameters)):
            path = fill_path(op, dict(zip(op.path_parameters, combo, strict=True)))
            response = await client.request(op.method, path, **request_kwargs(op, bob))
            tried.add(op.operation_id)
            if response.status_code != 404 or response.json().get("status_code") != 404:
                failures.append(
                    f"{op.method} {path} ({op.operation_id}): {response.status_code} {response.text}"
                )
            # Echoing the id Bob sent is no leak; anything else of Alice's is.
            leaked = [s for s in alice_world.secrets if s in response.text and s not in path]
            if leaked:
                failures.append(f"{op.method} {path}: answer contains {leaked}")
            after = await dump(session_maker, alice)
            if after != before:
                changed = [table for table in after if after[table] != before[table]]
                failures.append(f"{op.method} {path} ({op.operation_id}) changed Alice's {changed}")
                before = after
    assert tried >= EXPECTED_OPERATIONS
    assert failures == []


async def test_collections_never_contain_another_users_rows(
    client: Client, alice: Account, bob: Account, alice_world: AliceWorld
) -> None:
    """Every GET route without a path id, even given Alice's ids as filters, answers Bob nothing of Alice's."""
    bobs = await create_list(client, bob, "Bob's")
    await import_ids(client, bob, bobs["id"], ["bob00000001"])
    checked = []
    for op in await operations(client):
        if op.method != "GET" or op.path_parameters:
            continue
        filters = {name: alice_world.ids[name][0] for name in op.query_parameters if name in alice_world.ids}
        for query in ({}, filters) if filters else ({},):
            response = await client.get(op.path, params=query, headers=bob.headers)
            assert response.status_code == 200, (op.operation_id, query, response.text)
            leaked = [secret for secret in alice_world.secrets if secret in response.text]
            assert leaked == [], (op.operation_id, query)
            checked.append(op.operation_id)
    assert {"listLists", "listJobs", "me"} <= set(checked)
    lists = (await client.get("/api/lists", headers=bob.headers)).json()
    jobs = (await client.get("/api/jobs", headers=bob.headers)).json()
    assert ([item["name"] for item in lists["items"]], lists["total"]) == (["Bob's"], 1)
    assert jobs["total"] == 1
    filtered = (
        await client.get(f"/api/jobs?list_id={alice_world.ids['list_id'][0]}", headers=bob.headers)
    ).json()
    assert (filtered["items"], filtered["total"]) == ([], 0)

"""`/api/lists` and `/api/me` on a real database: CRUD, paging, validation and authentication."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from app.services import users as user_service
from db.models import ApiToken
from testkit.accounts import Account, create_account
from tests.integration.api.helpers import Client, Sessions, count_rows, create_list, import_ids


def assert_error_body(body: dict[str, Any], status: int) -> None:
    assert body["status_code"] == status
    assert isinstance(body["detail"], str)
    assert body["detail"]


async def test_create_then_get_returns_the_same_list(client: Client, alice: Account) -> None:
    """A created list answers 201 with its fields and reads back identically, with no videos."""
    created = await client.post(
        "/api/lists", json={"name": "  Music  ", "description": "Songs"}, headers=alice.headers
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["name"], body["description"], body["video_count"]) == ("Music", "Songs", 0)
    fetched = await client.get(f"/api/lists/{body['id']}", headers=alice.headers)
    assert fetched.status_code == 200
    assert fetched.json() == body


async def test_get_counts_the_videos_of_the_list(client: Client, alice: Account) -> None:
    """A list's video_count is the number of its videos, in the single read and in the collection."""
    music = await create_list(client, alice)
    await import_ids(client, alice, music["id"], ["vid00000001", "vid00000002", "vid00000003"])
    single = (await client.get(f"/api/lists/{music['id']}", headers=alice.headers)).json()
    collection = (await client.get("/api/lists", headers=alice.headers)).json()
    assert single["video_count"] == 3
    assert [item["video_count"] for item in collection["items"]] == [3]


async def test_collection_pages_in_creation_order(client: Client, alice: Account) -> None:
    """`GET /api/lists` answers {items,total,limit,offset}; limit/offset slice the lists in creation order."""
    names = [f"List {n}" for n in range(5)]
    for name in names:
        await create_list(client, alice, name)
    first = (await client.get("/api/lists?limit=2", headers=alice.headers)).json()
    assert set(first) == {"items", "total", "limit", "offset"}
    assert ([i["name"] for i in first["items"]], first["total"], first["limit"], first["offset"]) == (
        names[:2],
        5,
        2,
        0,
    )
    last = (await client.get("/api/lists?limit=2&offset=4", headers=alice.headers)).json()
    assert ([i["name"] for i in last["items"]], last["total"]) == (names[4:], 5)
    beyond = (await client.get("/api/lists?offset=10", headers=alice.headers)).json()
    assert (beyond["items"], beyond["total"], beyond["limit"]) == ([], 5, 100)


async def test_limit_bounds_are_1_to_1000(client: Client, alice: Account) -> None:
    """Limits 1 and 1000 are served; 0, 1001, a negative offset or a non-number are a 400 naming it."""
    for limit in (1, 1000):
        response = await client.get(f"/api/lists?limit={limit}", headers=alice.headers)
        assert (response.status_code, response.json()["limit"]) == (200, limit), response.text
    for query in ("limit=0", "limit=1001", "limit=-1", "offset=-1", "limit=many"):
        response = await client.get(f"/api/lists?{query}", headers=alice.headers)
        assert response.status_code == 400, (query, response.text)
        body = response.json()
        assert_error_body(body, 400)
        assert [problem["key"] for problem in body["extra"]] == [query.split("=")[0]], query


async def test_patch_changes_only_the_given_fields(client: Client, alice: Account) -> None:
    """PATCH updates the fields sent, keeps the others, clears description with null, bumps updated_at."""
    created = (
        await client.post("/api/lists", json={"name": "Music", "description": "Songs"}, headers=alice.headers)
    ).json()
    renamed = await client.patch(f"/api/lists/{created['id']}", json={"name": "Tunes"}, headers=alice.headers)
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["description"]) == ("Tunes", "Songs")
    assert datetime.fromisoformat(renamed.json()["updated_at"]) > datetime.fromisoformat(
        created["updated_at"]
    )
    cleared = await client.patch(
        f"/api/lists/{created['id']}", json={"description": None}, headers=alice.headers
    )
    assert (cleared.json()["name"], cleared.json()["description"]) == ("Tunes", None)
    fetched = (await client.get(f"/api/lists/{created['id']}", headers=alice.headers)).json()
    assert (fetched["name"], fetched["description"]) == ("Tunes", None)


async def test_delete_removes_the_list_and_its_videos(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """DELETE answers 204; the list is then 404 and its videos are gone."""
    music = await create_list(client, alice)
    await import_ids(client, alice, music["id"], ["vid00000001", "vid00000002"])
    response = await client.delete(f"/api/lists/{music['id']}", headers=alice.headers)
    assert response.status_code == 204, response.text
    assert (await client.get(f"/api/lists/{music['id']}", headers=alice.headers)).status_code == 404
    assert (await client.delete(f"/api/lists/{music['id']}", headers=alice.headers)).status_code == 404
    assert (await count_rows(session_maker, ["bookmark_lists", "videos"])) == {
        "bookmark_lists": 0,
        "videos": 0,
    }


async def test_unknown_list_id_is_404(client: Client, alice: Account) -> None:
    """An id that names no list (or is no uuid) is a 404, for read, update and delete."""
    missing = "01a226b6-0000-7000-8000-000000000000"
    for method, body in (("GET", None), ("PATCH", {"name": "x"}), ("DELETE", None)):
        response = await client.request(method, f"/api/lists/{missing}", headers=alice.headers, json=body)
        assert response.status_code == 404, (method, response.text)
        assert_error_body(response.json(), 404)
    assert (await client.get("/api/lists/not-a-uuid", headers=alice.headers)).status_code == 404


BAD_CREATE_BODIES: list[tuple[str, bytes]] = [
    ("empty name", b'{"name": ""}'),
    ("no name", b'{"description": "x"}'),
    ("name too long", b'{"name": "' + b"x" * 201 + b'"}'),
    ("name not a string", b'{"name": 5}'),
    ("unknown field", b'{"name": "Music", "owner": "bob"}'),
    ("bad json", b'{"name": "Music"'),
    ("not an object", b'["Music"]'),
    ("empty body", b""),
]


async def test_invalid_create_is_400_and_writes_nothing(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """Every kind of invalid list body answers 400 {status_code, detail, ...} and creates no list."""
    for case, body in BAD_CREATE_BODIES:
        response = await client.post(
            "/api/lists", content=body, headers={**alice.headers, "Content-Type": "application/json"}
        )
        assert response.status_code == 400, (case, response.text)
        assert_error_body(response.json(), 400)
    assert (await count_rows(session_maker, ["bookmark_lists"]))["bookmark_lists"] == 0


async def test_invalid_patch_is_400_and_changes_nothing(client: Client, alice: Account) -> None:
    """An invalid PATCH body (empty or null name, unknown field, too long) answers 400; the list is unchanged."""
    created = await create_list(client, alice)
    bad: list[dict[str, Any]] = [{"name": ""}, {"name": None}, {"colour": "red"}, {"name": "x" * 201}]
    for body in bad:
        response = await client.patch(f"/api/lists/{created['id']}", json=body, headers=alice.headers)
        assert response.status_code == 400, (body, response.text)
        assert_error_body(response.json(), 400)
    assert (await client.get(f"/api/lists/{created['id']}", headers=alice.headers)).json() == created


async def test_blank_name_is_rejected(client: Client, alice: Account, session_maker: Sessions) -> None:
    """A name of only spaces is as empty as '' and is refused with a 4xx, creating nothing."""
    response = await client.post("/api/lists", json={"name": "   "}, headers=alice.headers)
    assert response.status_code in {400, 422}, response.text
    assert (await count_rows(session_maker, ["bookmark_lists"]))["bookmark_lists"] == 0


BAD_AUTH_HEADERS: list[dict[str, str]] = [
    {},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer sytb_not-a-real-token"},
    {"Authorization": "Bearer something-else"},
    {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
]


async def test_requests_without_a_valid_token_are_401(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """Without a valid bearer token, reads and writes answer 401 with the error shape and write nothing."""
    for headers in BAD_AUTH_HEADERS:
        for method, path, body in (
            ("GET", "/api/lists", None),
            ("POST", "/api/lists", {"name": "Music"}),
            ("GET", "/api/me", None),
        ):
            response = await client.request(method, path, headers=headers, json=body)
            assert response.status_code == 401, (headers, method, path, response.text)
            assert_error_body(response.json(), 401)
    assert (await count_rows(session_maker, ["bookmark_lists"]))["bookmark_lists"] == 0


async def test_a_revoked_token_is_401_and_other_tokens_keep_working(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """Once revoked, a token is refused; another token of the same user still works."""
    async with session_maker() as session:
        user = await user_service.get_user_by_email(session, alice.email)
        spare = await user_service.issue_token(session, user, "spare")
        await session.commit()
    assert (await client.get("/api/me", headers=alice.headers)).status_code == 200
    async with session_maker() as session:
        token_id = await session.scalar(
            select(ApiToken.id).where(ApiToken.token_hash == user_service.hash_token(alice.token))
        )
        assert token_id is not None
        await user_service.revoke_token(session, token_id)
        await session.commit()
    revoked = await client.get("/api/me", headers=alice.headers)
    assert revoked.status_code == 401
    assert_error_body(revoked.json(), 401)
    still = await client.get("/api/me", headers={"Authorization": f"Bearer {spare.secret}"})
    assert still.status_code == 200
    assert still.json()["email"] == alice.email


async def test_me_names_the_token_owner(client: Client, alice: Account, bob: Account) -> None:
    """`/api/me` answers the id and email of whoever's token was sent."""
    for account in (alice, bob):
        response = await client.get("/api/me", headers=account.headers)
        assert response.status_code == 200
        body = response.json()
        assert (body["id"], body["email"]) == (str(account.user_id), account.email)
        assert set(body) == {"id", "email", "created_at", "is_admin", "metadata_source"}
        assert (body["is_admin"], body["metadata_source"]) == (False, "oembed")


async def test_each_user_sees_only_their_own_lists(
    client: Client, alice: Account, session_maker: Sessions
) -> None:
    """The collection and its total count only the caller's lists."""
    carol = await create_account(session_maker, "carol@example.com")
    await create_list(client, alice, "Alice's")
    await create_list(client, carol, "Carol's 1")
    await create_list(client, carol, "Carol's 2")
    alices = (await client.get("/api/lists", headers=alice.headers)).json()
    carols = (await client.get("/api/lists", headers=carol.headers)).json()
    assert ([i["name"] for i in alices["items"]], alices["total"]) == (["Alice's"], 1)
    assert ([i["name"] for i in carols["items"]], carols["total"]) == (["Carol's 1", "Carol's 2"], 2)

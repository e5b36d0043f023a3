"""What schemathesis found (tests/acceptance/test_openapi_conformance.py), one focused test per bug.

The OpenAPI document must declare every answer the API gives (status, content type, body), and odd but
well-formed input must be a 4xx, never a 500.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import schemathesis

from testkit.accounts import Account
from tests.integration.api.helpers import Client, create_list, import_ids, post_import

BIGINT_OVERFLOW = 2**63
"""One past the largest Postgres bigint."""


async def openapi(client: Client) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`"METHOD /path"` → operation object."""
    return {
        f"{method.upper()} {path}": operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }


def assert_documented(document: dict[str, Any], operation: str, status: int, content_type: str) -> None:
    """The operation declares this status, with this media type when it declares a body."""
    responses = operations(document)[operation]["responses"]
    assert str(status) in responses, (operation, status, sorted(responses))
    content = responses[str(status)].get("content")
    assert content is None or content_type.split(";")[0] in content, (operation, status, content_type)


async def test_every_operation_behind_the_token_documents_401_and_429(client: Client) -> None:
    """The token check answers 401 (no or bad token) and 429 (too many failed sign-ins) on every /api
    route but health; the document declared neither. Health needs no token and may answer 503."""
    document = await openapi(client)
    missing = {
        name: sorted({"401", "429"} - set(operation["responses"]))
        for name, operation in operations(document).items()
        if name != "GET /api/health" and not {"401", "429"} <= set(operation["responses"])
    }
    assert missing == {}
    health = operations(document)["GET /api/health"]
    assert health["security"] == [{}]  # was the document's default: a bearer token
    assert "503" in health["responses"]


async def test_error_answers_of_the_api_are_documented(client: Client, alice: Account) -> None:
    """404 (someone else's or no row), 409 (wrong state, duplicate), 422 (unusable content) and the 200 of
    an import with nothing new are real answers; none was in the document."""
    document = await openapi(client)
    music = await create_list(client, alice)
    job_id = (await import_ids(client, alice, music["id"], ["dQw4w9WgXcQ"]))["job"]["id"]
    nowhere = uuid.uuid4()
    answers = {
        "GET /api/lists/{list_id}": await client.get(f"/api/lists/{nowhere}", headers=alice.headers),
        "GET /api/jobs/{job_id}": await client.get(f"/api/jobs/{nowhere}", headers=alice.headers),
        "POST /api/lists/{list_id}/videos": await client.post(
            f"/api/lists/{music['id']}/videos", json={"url": "dQw4w9WgXcQ"}, headers=alice.headers
        ),
        "POST /api/jobs/{job_id}/retry": await client.post(
            f"/api/jobs/{job_id}/retry", headers=alice.headers
        ),
        "POST /api/lists/{list_id}/imports": await post_import(client, alice, music["id"], "dQw4w9WgXcQ"),
    }
    expected = {
        "GET /api/lists/{list_id}": 404,
        "GET /api/jobs/{job_id}": 404,
        "POST /api/lists/{list_id}/videos": 409,
        "POST /api/jobs/{job_id}/retry": 409,
        "POST /api/lists/{list_id}/imports": 200,
    }
    assert {name: response.status_code for name, response in answers.items()} == expected
    for name, response in answers.items():
        assert_documented(document, name, response.status_code, response.headers["content-type"])
    for name, response in {
        "POST /api/lists/{list_id}/videos": await client.post(
            f"/api/lists/{music['id']}/videos", json={"url": "https://example.com/"}, headers=alice.headers
        ),
        "POST /api/lists/{list_id}/imports": await post_import(client, alice, music["id"], "no links here"),
    }.items():
        assert response.status_code == 422, response.text
        assert_documented(document, name, 422, response.headers["content-type"])
    assert set(operations(document)["POST /api/lists/{list_id}/imports"]["responses"]) >= {"413", "429"}


async def test_history_pages_conform_to_the_documented_body(client: Client, alice: Account) -> None:
    """The history endpoints answer a JSON object; the document said a JSON string."""
    music = await create_list(client, alice)
    job_id = (await import_ids(client, alice, music["id"], ["dQw4w9WgXcQ"]))["job"]["id"]
    cancelled = await client.post(f"/api/jobs/{job_id}/cancel", headers=alice.headers)  # writes an event
    assert cancelled.status_code == 202
    schema = schemathesis.openapi.from_dict(await openapi(client))
    for path, url in {
        "/api/progress": "/api/progress",
        "/api/jobs/{job_id}/progress-history": f"/api/jobs/{job_id}/progress-history",
    }.items():
        response = await client.get(url, headers=alice.headers)
        assert response.status_code == 200
        assert [event["status"] for event in response.json()["events"]] == ["cancelled"]
        schema[path]["GET"].validate_response(response)  # raises on a body the schema does not describe


async def test_unknown_fields_of_json_bodies_are_documented_as_refused(
    client: Client, alice: Account
) -> None:
    """Unknown fields are refused with 400, but the schemas left `additionalProperties` open."""
    components = (await openapi(client))["components"]["schemas"]
    assert {
        name: components[name].get("additionalProperties")
        for name in ("ListCreate", "ListUpdate", "VideoCreate")
    } == dict.fromkeys(("ListCreate", "ListUpdate", "VideoCreate"), False)
    refused = await client.post("/api/lists", json={"name": "Music", "colour": "red"}, headers=alice.headers)
    assert refused.status_code == 400


async def test_errors_of_the_csv_export_are_labelled_json(client: Client, alice: Account) -> None:
    """The export handler's text/csv media type was given to its error answers too: a JSON 401 came
    back as `text/csv`. The CSV itself is still text/csv."""
    music = await create_list(client, alice)
    url = f"/api/lists/{music['id']}/export.csv"
    unauthorised = await client.get(url)
    assert unauthorised.status_code == 401
    assert unauthorised.headers["content-type"].startswith("application/json")
    assert unauthorised.json()["status_code"] == 401
    exported = await client.get(url, headers=alice.headers)
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    document = await openapi(client)
    assert_documented(document, "GET /api/lists/{list_id}/export.csv", 200, "text/csv")
    assert_documented(document, "GET /api/lists/{list_id}/export.csv", 401, "application/json")


async def test_the_import_body_is_documented(client: Client) -> None:
    """The handler reads the raw body, so Litestar documented none: clients could not know what to send."""
    body = operations(await openapi(client))["POST /api/lists/{list_id}/imports"]["requestBody"]
    assert body["required"] is True
    assert set(body["content"]) == {"text/csv", "text/plain", "multipart/form-data"}


@pytest.mark.parametrize(
    "url",
    [
        f"/api/lists?offset={BIGINT_OVERFLOW}",
        f"/api/jobs?offset={BIGINT_OVERFLOW}",
        "/api/lists/{list_id}/videos?offset=" + str(BIGINT_OVERFLOW),
        f"/api/progress?after_seq={BIGINT_OVERFLOW}",
        "/api/jobs/{job_id}/progress-history?after_seq=" + str(10**30),
    ],
)
async def test_offsets_past_a_bigint_are_400_not_500(client: Client, alice: Account, url: str) -> None:
    """`offset` and `after_seq` had no upper bound: past Postgres' bigint the query failed with a 500."""
    music = await create_list(client, alice)
    job_id = (await import_ids(client, alice, music["id"], ["dQw4w9WgXcQ"]))["job"]["id"]
    response = await client.get(url.format(list_id=music["id"], job_id=job_id), headers=alice.headers)
    assert response.status_code == 400, response.text
    assert response.json()["status_code"] == 400


async def test_nul_characters_in_text_are_400_not_500(client: Client, alice: Account) -> None:
    """Postgres text cannot hold NUL: a name, description or search with one was a 500."""
    music = await create_list(client, alice)
    answers = {
        "create name": await client.post("/api/lists", json={"name": "a\x00b"}, headers=alice.headers),
        "create description": await client.post(
            "/api/lists", json={"name": "ok", "description": "x\x00"}, headers=alice.headers
        ),
        "rename": await client.patch(
            f"/api/lists/{music['id']}", json={"name": "\x00"}, headers=alice.headers
        ),
        "search": await client.get(
            f"/api/lists/{music['id']}/videos", params={"q": "a\x00"}, headers=alice.headers
        ),
    }
    assert {case: response.status_code for case, response in answers.items()} == dict.fromkeys(answers, 400)
    lists = (await client.get("/api/lists", headers=alice.headers)).json()
    assert [item["name"] for item in lists["items"]] == ["Music"]


async def test_a_form_field_that_is_not_utf8_is_422_not_500(client: Client, alice: Account) -> None:
    """Litestar decodes a multipart text field as UTF-8 and raised UnicodeDecodeError: a 500."""
    music = await create_list(client, alice)
    response = await client.post(
        f"/api/lists/{music['id']}/imports",
        content=b'--x\r\nContent-Disposition: form-data; name="links"\r\n\r\n\xff\xfe\r\n--x--\r\n',
        headers={**alice.headers, "Content-Type": "multipart/form-data; boundary=x"},
    )
    assert response.status_code == 422, response.text
    assert "UTF-8" in response.json()["detail"]

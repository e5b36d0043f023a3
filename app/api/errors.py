"""Maps domain errors to `{"status_code", "detail", "extra"}` responses, and documents those answers."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response
from litestar.openapi.datastructures import ResponseSpec

from app.services.errors import DomainError


class ErrorBody(msgspec.Struct):
    """Every error answer of the API (ours and Litestar's own): docs/design.md, "HTTP API"."""

    status_code: int
    detail: str
    extra: dict[str, Any] | list[Any] | None = None


ERROR_DESCRIPTIONS = {
    400: "The request is malformed (a broken multipart form, bad JSON)",
    401: "No bearer token, or an unknown or revoked one",
    404: "No such row among the caller's own (someone else's is not found either)",
    409: "The row is not in a state that allows this",
    413: "The body is over the size limit (an import, also over the row limit)",
    422: "The request is well formed but its content is unusable",
    429: "Too many requests; `Retry-After` says when to try again",
}
AUTHENTICATED = (401, 429)
"""What the token check in front of every /api route but health can answer (429: failed sign-ins)."""


def error_responses(*status_codes: int) -> dict[int, ResponseSpec]:
    """`responses=` for a handler behind the token check: 401 and 429, plus the given status codes.

    (400 for a malformed parameter or body is declared by Litestar itself.)
    """
    return {
        code: ResponseSpec(
            data_container=ErrorBody, description=ERROR_DESCRIPTIONS[code], generate_examples=False
        )
        for code in sorted({*AUTHENTICATED, *status_codes})
    }


def domain_error_handler(_: Request[Any, Any, Any], exc: DomainError) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {"status_code": exc.status_code, "detail": exc.detail}
    if exc.extra is not None:
        body["extra"] = exc.extra
    return Response(body, status_code=exc.status_code)

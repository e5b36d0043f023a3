"""Maps domain errors to `{"status_code", "detail", "extra"}` responses."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response

from app.services.errors import DomainError


def domain_error_handler(_: Request[Any, Any, Any], exc: DomainError) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {"status_code": exc.status_code, "detail": exc.detail}
    if exc.extra is not None:
        body["extra"] = exc.extra
    return Response(body, status_code=exc.status_code)

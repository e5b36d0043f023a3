"""Domain errors raised by services; the HTTP layer maps each to one status code (app/api/errors.py)."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status_code = 400

    def __init__(self, detail: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(DomainError):
    """The row does not exist or belongs to someone else (never say which: no existence leak)."""

    status_code = 404


class Conflict(DomainError):
    status_code = 409


class InvalidInput(DomainError):
    status_code = 422


class TooLarge(DomainError):
    status_code = 413

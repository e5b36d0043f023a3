"""Users and their API tokens. A token is shown once; only its sha256 is stored."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import ApiToken, User

TOKEN_PREFIX = "sytb_"
LAST_USED_RESOLUTION = timedelta(minutes=1)
"""`last_used_at` is refreshed at most this often, so authenticating is a read, not a write, per request."""


class UserError(ValueError):
    """A user-facing problem with a users/tokens command; the message says what to do."""


class UserRepository(SQLAlchemyAsyncRepository[User]):
    model_type = User


class TokenRepository(SQLAlchemyAsyncRepository[ApiToken]):
    model_type = ApiToken


@dataclass(frozen=True)
class IssuedToken:
    token_id: UUID
    user_id: UUID
    secret: str
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Authenticated:
    """Who a token belongs to, and which token it was (a socket is closed when that token stops being
    valid: app/live/hub.py)."""

    user: User
    token_id: UUID
    expires_at: datetime | None


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def presented_token_hash(secret: str) -> str | None:
    """The hash to look a presented token up by; None for a string that cannot be one of our tokens."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    return hash_token(secret)


def new_token_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def normalise_email(email: str) -> str:
    cleaned = email.strip().lower()
    local, at, domain = cleaned.partition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in cleaned) or len(cleaned) > 320:
        raise UserError(f"not a valid email address: {email!r}")
    return cleaned


async def create_user(session: AsyncSession, email: str, *, admin: bool = False) -> User:
    address = normalise_email(email)
    users = UserRepository(session=session)
    if await users.exists(email=address):
        raise UserError(f"a user with email {address} already exists")
    return await users.add(User(email=address, is_admin=admin))


async def set_admin(session: AsyncSession, email: str, admin: bool) -> User:
    user = await get_user_by_email(session, email)
    user.is_admin = admin
    return user


async def get_user_by_email(session: AsyncSession, email: str) -> User:
    address = normalise_email(email)
    user = await UserRepository(session=session).get_one_or_none(email=address)
    if user is None:
        raise UserError(f"no user with email {address}")
    return user


@dataclass(frozen=True)
class UserSummary:
    email: str
    is_admin: bool
    created_at: datetime
    active_tokens: int


async def list_users(session: AsyncSession) -> list[UserSummary]:
    """Every user, oldest first, with the number of tokens that still sign in."""
    active = func.count(ApiToken.id).filter(token_signs_in())
    rows = await session.execute(
        select(User.email, User.is_admin, User.created_at, active)
        .outerjoin(ApiToken, ApiToken.user_id == User.id)
        .group_by(User.id)
        .order_by(User.created_at, User.email)
    )
    return [UserSummary(*row) for row in rows]


async def first_user(session: AsyncSession) -> User:
    """The oldest user (the one `bookmarks run` creates on an empty database)."""
    user = await session.scalar(select(User).order_by(User.created_at, User.email).limit(1))
    if user is None:
        raise UserError("there are no users yet: `bookmarks run` creates the first one")
    return user


async def issue_token(
    session: AsyncSession, user: User, name: str = "default", *, expires_in: timedelta | None = None
) -> IssuedToken:
    secret = new_token_secret()
    expires_at = None if expires_in is None else datetime.now(UTC) + expires_in
    token = await TokenRepository(session=session).add(
        ApiToken(user_id=user.id, name=name[:100], token_hash=hash_token(secret), expires_at=expires_at)
    )
    return IssuedToken(token_id=token.id, user_id=user.id, secret=secret, expires_at=expires_at)


async def revoke_token(session: AsyncSession, token_id: UUID) -> ApiToken:
    token = await TokenRepository(session=session).get_one_or_none(id=token_id)
    if token is None:
        raise UserError(f"no token with id {token_id}")
    if token.revoked_at is None:
        token.revoked_at = datetime.now(UTC)
    return token


async def list_tokens(session: AsyncSession, user: User) -> list[ApiToken]:
    rows = await session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at)
    )
    return list(rows)


def token_signs_in() -> ColumnElement[bool]:
    """A token row that still signs in: not revoked, not expired."""
    return ApiToken.revoked_at.is_(None) & or_(
        ApiToken.expires_at.is_(None), ApiToken.expires_at > func.now()
    )


async def authenticate(session: AsyncSession, secret: str) -> Authenticated | None:
    """The live user a token belongs to, or None for an unknown, malformed, revoked or expired token.
    (The progress socket checks tokens without the ORM: `EventStore.live_token`.)"""
    token_hash = presented_token_hash(secret)
    if token_hash is None:
        return None
    row = (
        await session.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(
                ApiToken.token_hash == token_hash,
                token_signs_in(),
            )
        )
    ).one_or_none()
    if row is None:
        return None
    token: ApiToken = row[0]
    user: User = row[1]
    now = datetime.now(UTC)
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        await session.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))
        await session.commit()
    return Authenticated(user=user, token_id=token.id, expires_at=token.expires_at)

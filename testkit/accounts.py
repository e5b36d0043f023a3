"""Users with a token, made through the app's own service (as `bookmarks users create` does)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.services import users as user_service


@dataclass(frozen=True)
class Account:
    user_id: uuid.UUID
    email: str
    token: str
    token_id: uuid.UUID

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def create_account(sessions: async_sessionmaker[AsyncSession], email: str) -> Account:
    async with sessions() as session:
        user = await user_service.create_user(session, email)
        issued = await user_service.issue_token(session, user)
        await session.commit()
    return Account(user_id=user.id, email=user.email, token=issued.secret, token_id=issued.token_id)

"""The terminal client and a socket closed 4430 (rate limited): it waits as long as the server asks and
keeps its token; only 4401 ends it (exit 77)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets

from app.exits import ExitCode
from app.terminal import ClientError, Connection, LiveFollower, retry_after_s

TOKEN = "sytb_" + "r" * 43


def test_the_retry_hint_is_read_from_the_close_reason() -> None:
    """ "rate limited; retry in 12 s" asks for 12 s; a reason without a hint asks for nothing."""
    assert retry_after_s("rate limited; retry in 12 s") == 12.0
    assert retry_after_s("rate limited") == 0.0


async def test_a_rate_limited_socket_waits_as_asked_then_a_refused_token_ends_it() -> None:
    """Closed 4430 with "retry in 1 s", the follower waits at least that long and says in its connection
    line that it is rate limited, then tries again with the same token; the 4401 that follows ends it
    with exit 77."""
    closes = [(4430, "rate limited; retry in 1 s"), (4401, "unknown token")]
    hellos: list[dict[str, Any]] = []

    async def refuse(ws: websockets.ServerConnection) -> None:
        hellos.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
        await ws.close(*closes[len(hellos) - 1])

    downs: list[Connection] = []
    async with websockets.serve(refuse, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        follower = LiveFollower(
            f"ws://127.0.0.1:{port}/api/ws/progress",
            TOKEN,
            on_change=lambda _: None,
            done=lambda _: False,
            on_connection=downs.append,
        )
        with pytest.raises(ClientError) as refused:
            await asyncio.wait_for(follower.run(), 15)

    assert refused.value.exit_code == ExitCode.NO_PERMISSION
    assert [hello["token"] for hello in hellos] == [TOKEN, TOKEN], "the token is kept after 4430"
    [down] = downs
    assert down.problem.startswith("rate limited"), down
    assert down.retry_at is not None and down.down_since is not None
    assert down.retry_at - down.down_since >= 1.0, "the wait the server asked for"

"""Fuzzing the WebSocket protocol: no client frame, however malformed, makes the session fail (1011)
or hang; each gets its documented close code (docs/design.md, invariant 4)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from app.live.frames import BadFrame, NotAHello, decode_hello
from tests.unit.live.test_live_session import Harness

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
HELLO_LIKE = st.fixed_dictionaries(
    {"type": st.sampled_from(["hello", "Hello", "ping", "subscribe", ""])},
    optional={"token": JSON_VALUES, "after": JSON_VALUES, "extra": JSON_VALUES},
).map(json.dumps)
FRAMES = st.text(max_size=200) | JSON_VALUES.map(json.dumps) | HELLO_LIKE

# As many examples as the Hypothesis profile says (tests/conftest.py): 5,000 each in the full suite.


def is_a_hello_with_a_token(text: str) -> bool:
    try:
        return decode_hello(text).token is not None
    except (BadFrame, NotAHello):
        return False


@given(first=FRAMES)
async def test_any_first_frame_is_refused_with_4401_or_1008(first: str) -> None:
    """A first frame that is not a hello with a valid token closes with 4401 when it is a hello with a token
    (its token was checked and refused), else 1008 (no token was checked, so the client keeps it)."""
    harness = Harness()
    harness.start()
    harness.socket.say(first)
    result = await harness.result()
    assert result.close_code == (4401 if is_a_hello_with_a_token(first) else 1008), (first, result)
    assert harness.hub.active == set(), "a refused socket must not stay subscribed"


@given(frame=FRAMES)
async def test_any_frame_while_live_gets_a_pong_or_1008(frame: str) -> None:
    """While streaming, only an exact ping is answered (pong); anything else closes with 1008."""
    harness = Harness()
    await harness.live()
    harness.socket.say(frame)
    if frame.replace(" ", "") == '{"type":"ping"}':
        assert (await harness.socket.next_sent()).type == "pong"
        harness.socket.leave()
        assert (await harness.result()).close_code is None
    else:
        result = await harness.result()
        assert result.close_code == 1008, (frame, result)
    assert harness.hub.active == set()

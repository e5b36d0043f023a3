"""The frames of the progress WebSocket protocol (docs/design.md, "The progress socket"), in one place.

What a client sends is decoded here (`hello`, `ping`); what the server sends is built here as a typed
`Frame`: its kind, the stream position it brings the client to, and its JSON text. Event frames splice the
stored event JSON instead of re-encoding it, so a delivery costs one string concatenation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import msgspec

FrameKind = Literal["event", "snapshot", "ready", "pong"]


@dataclass(frozen=True, slots=True)
class Frame:
    kind: FrameKind
    seq: int | None
    """The seq the client has everything up to once it has this frame (None: a pong says nothing)."""
    text: str


def event_frame(seq: int, payload: str) -> Frame:
    """`{"type":"event", ...the event...}` from the event's stored JSON text."""
    return Frame("event", seq, '{"type":"event",' + payload[1:])


def snapshot_frame(seq: int, jobs: str) -> Frame:
    """Every active or recent job's state (`jobs`: a JSON array text) as of seq `seq`."""
    return Frame("snapshot", seq, f'{{"type":"snapshot","seq":{seq},"jobs":{jobs}}}')


def ready_frame(seq: int, *, resumed: bool) -> Frame:
    return Frame("ready", seq, f'{{"type":"ready","seq":{seq},"resumed":{"true" if resumed else "false"}}}')


PONG: Final = Frame("pong", None, '{"type":"pong"}')


# -- what the client sends --


class BadFrame(Exception):
    """Not JSON, or JSON too deep to decode: the client broke the protocol (close 1008)."""


class NotAHello(Exception):
    """Well-formed JSON that is not a valid hello: the client never identified itself (close 4401)."""


# Client messages spell out `type` as a required field: msgspec treats a lone tagged struct's tag as optional.
class Hello(msgspec.Struct, forbid_unknown_fields=True):
    type: Literal["hello"]
    token: str | None = None
    after: int | None = None


class Ping(msgspec.Struct, forbid_unknown_fields=True):
    type: Literal["ping"]


_hello_decoder: Final = msgspec.json.Decoder(Hello)
_ping_decoder: Final = msgspec.json.Decoder(Ping)


def decode_hello(text: str) -> Hello:
    """Decoded straight into `Hello`: a message of another shape is refused at its first wrong byte, before
    anyone is authenticated, instead of being built whole as Python objects first (a 3 MB `[{},{},…]`
    cost 64 MB and a 0.12 s stall of the event loop that way)."""
    try:
        return _hello_decoder.decode(text)
    except msgspec.ValidationError:  # a subclass of DecodeError: test it first
        raise NotAHello from None
    except (msgspec.DecodeError, RecursionError):  # msgspec raises RecursionError on deep nesting
        raise BadFrame from None


def decode_ping(text: str) -> Ping:
    try:
        return _ping_decoder.decode(text)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        raise BadFrame from None

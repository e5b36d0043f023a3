"""Thousands of WebSocket clients in one process, cheap enough that the server, not the client, is measured.

Each client is a bare `asyncio.Protocol` speaking just enough RFC 6455 (unmasked server frames in, masked
text and pong frames out): the same hello as a browser, then it only timestamps what arrives. A receipt
time is `time.perf_counter_ns()` on entry to `data_received`: CLOCK_MONOTONIC, the same clock in every
process of the machine, so the parent can subtract its own commit times.

The parent drives a child (`python -m bench.swarm`) with one JSON command per line on stdin and reads one
JSON answer per line on stdout; see `SwarmProcess`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import re
import struct
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import uvloop

from bench.rlimit import raise_nofile

OP_TEXT = 0x1
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
_SEQ = re.compile(rb'"seq": ?(\d+)')
_EVENT = b'{"type":"event"'
_READY = b'{"type":"ready"'
_SNAPSHOT = b'{"type":"snapshot"'


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked frame (clients must mask); the mask is random, applied with one big-int XOR."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    keystream = (mask * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(keystream, "big")).to_bytes(length, "big")
    return header + mask + masked


@dataclass
class Tag:
    """A group of clients opened together; its counters are what the parent asks about."""

    record: bool
    reconnect: bool = False
    """Clients that lose their connection come back as the dashboard does (`RawClient.redial_delay`)."""
    closing: bool = False
    clients: list[RawClient] = field(default_factory=list)
    events: int = 0
    snapshots_after_ready: int = 0
    first_ns: int = 0
    last_ns: int = 0
    times: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    progressed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set whenever a client's position moves: what `Swarm.wait` awaits."""

    def reset(self) -> None:
        self.events = self.snapshots_after_ready = self.first_ns = self.last_ns = 0
        self.times = defaultdict(list)
        for client in self.clients:
            client.position = 0


class RawClient(asyncio.Protocol):
    def __init__(self, address: tuple[str, int], path: str, token: str, tag: Tag) -> None:
        self.address = address
        self.path = path
        self.token = token
        self.tag = tag
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.position = 0
        """The highest seq this client has seen (an event's, or a snapshot's S)."""
        self.close_code: int | None = None
        self.lost = False
        # What a reconnecting client keeps (tags opened with reconnect=True):
        self.readies = 0
        self.attempt = 0
        self.connects = 0
        self.ready_ns = 0
        """When the last `ready` arrived, and whether it said resumed."""
        self.ready_resumed = False
        self.duplicates = 0
        """Events at or below the position: the client would drop them (a server that repeats)."""
        self.gaps = 0
        """Events beyond position + 1 without a snapshot first: an event lost."""
        self.snapshots = 0
        self.redialing: asyncio.Future[None] | None = None

    def hello(self) -> bytes:
        after = self.position if self.readies else None
        return json.dumps({"type": "hello", "token": self.token, "after": after}).encode()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.connects += 1
        key = base64.b64encode(os.urandom(16)).decode()
        host, port = self.address
        self.transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter_ns()
        self.buffer += data
        if not self.upgraded and not self._upgrade():
            return
        self._frames(now)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.tag.progressed.set()  # a waiter stops counting this client
        if not self.ready.done():
            self.ready.set_exception(
                ConnectionError(f"closed before ready (code {self.close_code}): {exc!r}")
            )
        if self.tag.reconnect and self.readies and not self.tag.closing:
            self.redial_later()

    def redial_delay(self) -> float:
        """As the dashboard (app/dashboard/static/live.js): 0.25-1 s after 1012 (a restart), else
        exponential backoff with equal jitter, 0.5 s doubling to 30 s, reset by a `ready`."""
        if self.close_code == 1012:
            return 0.25 + random.random() * 0.75
        ceiling = min(30.0, 0.5 * 2**self.attempt)
        self.attempt += 1
        return float(ceiling / 2 + random.random() * ceiling / 2)

    def redial_later(self) -> None:
        delay = self.redial_delay()
        asyncio.get_running_loop().call_later(delay, self._start_redial)

    def _start_redial(self) -> None:
        self.redialing = asyncio.ensure_future(self.redial())  # kept: a task nobody holds may vanish

    async def redial(self) -> None:
        if self.tag.closing:
            return
        self.buffer.clear()
        self.upgraded = self.lost = False
        self.close_code = None
        try:
            await asyncio.get_running_loop().create_connection(lambda: self, *self.address)
        except OSError:
            self.redial_later()  # refused: the server is not back yet

    def _upgrade(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buffer[:end])
        del self.buffer[: end + 4]
        if not head.startswith(b"HTTP/1.1 101"):
            self.ready.set_exception(ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace")))
            assert self.transport is not None
            self.transport.close()
            return False
        self.upgraded = True
        self._send(OP_TEXT, self.hello())
        return True

    def _frames(self, now: int) -> None:
        buffer = self.buffer
        while len(buffer) >= 2:
            opcode = buffer[0] & 0x0F
            length = buffer[1] & 0x7F
            offset = 2
            if length == 126:
                if len(buffer) < 4:
                    return
                (length,) = struct.unpack_from("!H", buffer, 2)
                offset = 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                (length,) = struct.unpack_from("!Q", buffer, 2)
                offset = 10
            if len(buffer) < offset + length:
                return
            payload = bytes(buffer[offset : offset + length])
            del buffer[: offset + length]
            self._frame(opcode, payload, now)

    def _frame(self, opcode: int, payload: bytes, now: int) -> None:
        if opcode == OP_TEXT:
            self._text(payload, now)
        elif opcode == OP_PING:
            self._send(OP_PONG, payload)
        elif opcode == OP_CLOSE:
            self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            assert self.transport is not None
            self.transport.close()

    def _text(self, payload: bytes, now: int) -> None:
        match = _SEQ.search(payload, 0, 200)
        seq = int(match.group(1)) if match else 0
        tag = self.tag
        if payload.startswith(_EVENT):
            if self.readies:
                if seq <= self.position:
                    self.duplicates += 1
                elif seq > self.position + 1:
                    self.gaps += 1
            self.position = max(self.position, seq)
            tag.progressed.set()
            tag.events += 1
            if not tag.first_ns:
                tag.first_ns = now
            tag.last_ns = now
            if tag.record:
                tag.times[seq].append(now)
        elif payload.startswith(_SNAPSHOT):
            self.position = max(self.position, seq)
            self.snapshots += 1
            tag.progressed.set()
            if self.ready.done():
                tag.snapshots_after_ready += 1
        elif payload.startswith(_READY):
            self.position = max(self.position, seq)
            self.readies += 1
            self.attempt = 0
            self.ready_ns = now
            self.ready_resumed = b'"resumed":true' in payload
            tag.progressed.set()
            if not self.ready.done():
                self.ready.set_result(None)

    def _send(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(opcode, payload))


class Swarm:
    def __init__(self) -> None:
        self.tags: dict[str, Tag] = {}

    async def open(
        self,
        url: str,
        tag: str,
        token: str | list[str],
        count: int,
        concurrency: int = 64,
        record: bool = False,
        reconnect: bool = False,
    ) -> dict[str, Any]:
        """`count` clients with `token`, or one client per token of a list (`count` then ignored)."""
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        group = self.tags.setdefault(tag, Tag(record=record, reconnect=reconnect))
        slots = asyncio.Semaphore(concurrency)
        loop = asyncio.get_running_loop()
        errors: list[str] = []

        tokens = token if isinstance(token, list) else [token] * count

        async def open_one(token: str) -> None:
            async with slots:
                client = RawClient((host, port), parts.path, token, group)
                try:
                    await loop.create_connection(lambda: client, host, port)
                    await asyncio.wait_for(client.ready, 60)
                    group.clients.append(client)
                except (OSError, ConnectionError, TimeoutError) as exc:
                    errors.append(repr(exc))
                    if client.transport is not None:
                        client.transport.close()

        started = time.perf_counter()
        await asyncio.gather(*(open_one(token) for token in tokens))
        return {
            "opened": len(tokens) - len(errors),
            "failed": len(errors),
            "errors": sorted(set(errors))[:5],
            "seconds": time.perf_counter() - started,
        }

    def stats(self) -> dict[str, Any]:
        return {
            name: {
                "clients": len(tag.clients),
                "alive": sum(not client.lost for client in tag.clients),
                "events": tag.events,
                "snapshots_after_ready": tag.snapshots_after_ready,
                "first_ns": tag.first_ns,
                "last_ns": tag.last_ns,
                "positions": [client.position for client in tag.clients],
                "close_codes": sorted({c.close_code for c in tag.clients if c.close_code is not None}),
            }
            for name, tag in self.tags.items()
        }

    async def wait(self, tag: str, seq: int, within_s: float) -> dict[str, Any]:
        """Waits until every open client of `tag` has seen `seq` (an event's or a snapshot's), or `within_s`;
        answers how many open clients are still behind and how many have lost their connection."""
        group = self.tags[tag]

        def behind() -> int:
            return sum(1 for client in group.clients if client.position < seq and not client.lost)

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_s):
                while behind():
                    group.progressed.clear()
                    await group.progressed.wait()
        return {"behind": behind(), "lost": sum(client.lost for client in group.clients)}

    def storm(self, since_ns: int) -> dict[str, Any]:
        """Over every reconnecting client: who has had a `ready` since `since_ns` (resumed or not), the
        last of them, and what the clients counted (duplicates, gaps, snapshots, connections)."""
        clients = [client for tag in self.tags.values() if tag.reconnect for client in tag.clients]
        back = [client for client in clients if client.ready_ns >= since_ns]
        return {
            "clients": len(clients),
            "ready_since": len(back),
            "resumed_since": sum(client.ready_resumed for client in back),
            "last_ready_ns": max((client.ready_ns for client in back), default=0),
            "ready_ns": sorted(client.ready_ns for client in back),
            "duplicates": sum(client.duplicates for client in clients),
            "gaps": sum(client.gaps for client in clients),
            "snapshots": sum(client.snapshots for client in clients),
            "connects": sum(client.connects for client in clients),
            "positions": {
                tag_name: [client.position for client in tag.clients]
                for tag_name, tag in self.tags.items()
                if tag.reconnect
            },
        }

    async def wait_back(self, since_ns: int, within_s: float) -> dict[str, Any]:
        """Waits until every reconnecting client has had a `ready` since `since_ns`, or `within_s`."""
        clients = [client for tag in self.tags.values() if tag.reconnect for client in tag.clients]
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline and any(client.ready_ns < since_ns for client in clients):
            await asyncio.sleep(0.05)
        return self.storm(since_ns)

    def times(self, tag: str) -> dict[str, list[int]]:
        return {str(seq): times for seq, times in self.tags[tag].times.items()}

    def reset(self) -> dict[str, Any]:
        for tag in self.tags.values():
            tag.reset()
        return {}

    async def close(self, tag: str | None = None) -> dict[str, Any]:
        names = list(self.tags) if tag is None else [tag]
        for name in names:
            group = self.tags.pop(name)
            group.closing = True
            for client in group.clients:
                if client.transport is not None:
                    client.transport.close()
        await asyncio.sleep(0.1)
        return {}


async def serve_commands() -> None:
    """Reads commands from stdin, one JSON object a line, and answers each on stdout."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    swarm = Swarm()
    while line := await reader.readline():
        command = json.loads(line)
        op = command.pop("op")
        answer: dict[str, Any]
        if op == "open":
            answer = await swarm.open(**command)
        elif op == "stats":
            answer = swarm.stats()
        elif op == "times":
            answer = swarm.times(**command)
        elif op == "wait":
            answer = await swarm.wait(**command)
        elif op == "reset":
            answer = swarm.reset()
        elif op == "storm":
            answer = swarm.storm(**command)
        elif op == "wait_back":
            answer = await swarm.wait_back(**command)
        elif op == "close":
            answer = await swarm.close(**command)
        elif op == "exit":
            await swarm.close()
            print(json.dumps({}), flush=True)
            return
        else:
            answer = {"error": f"unknown op {op!r}"}
        print(json.dumps(answer), flush=True)


class SwarmProcess:
    """The parent's handle on one `python -m bench.swarm` child."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        from bench.common import log_path

        with open(log_path(self.name), "ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.swarm",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
                limit=2**26, preexec_fn=raise_nofile,
            )  # fmt: skip

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def call(self, op: str, timeout_s: float = 300, **args: Any) -> dict[str, Any]:
        assert self.process is not None
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        async with self._lock:
            self.process.stdin.write(json.dumps({"op": op, **args}).encode() + b"\n")
            await self.process.stdin.drain()
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout_s)
        if not line:
            raise RuntimeError(f"swarm {self.name} exited; see {self.name}.log")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(RuntimeError, TimeoutError, BrokenPipeError, ConnectionResetError):
            await self.call("exit", timeout_s=30)
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


def main() -> None:
    raise_nofile()
    uvloop.run(serve_commands())


if __name__ == "__main__":
    main()

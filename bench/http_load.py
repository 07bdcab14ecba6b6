"""A lean open-loop HTTP/1.1 load generator: pre-built requests over keep-alive connections, asyncio protocols.

The bench's generator shares the machine's cores with the server it measures, so what it costs per request is
taken from the server: aiohttp's client spent 0.35-0.40 ms of CPU per request at 500 requests/s (17-20 % of a
core), this one 0.18 ms (9 %): it writes a request built once per body and parses only the status line and the
Content-Length of the answer.
Open loop: request i is due at start + i / rate whatever happened to the ones before (a new connection is opened
when none is idle), and each request's end is stamped when its last byte arrives, in the protocol's callback.
"""

from __future__ import annotations

import asyncio
import time
from typing import cast
from urllib.parse import urlsplit

CLOCK = time.perf_counter  # uvloop's loop.time() has 1 ms steps


class ResponseReader:
    """The responses on one keep-alive connection, one at a time: feed bytes, get each complete response's status."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[int]:
        self.buffer += data
        done: list[int] = []
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return done
            head = bytes(self.buffer[:head_end]).split(b"\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return done
            done.append(int(head[0].split(b" ", 2)[1]))
            del self.buffer[:end]


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = ResponseReader()
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, float]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's TCPTransport is no asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        for status in self.reader.feed(data):
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result((status, CLOCK()))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"the server closed the connection ({exc})"))


def request_bytes(url: str, headers: dict[str, str], body: bytes) -> bytes:
    parts = urlsplit(url)
    lines = [f"POST {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}", *(f"{k}: {v}" for k, v in headers.items()),
             f"Content-Length: {len(body)}", "", ""]  # fmt: skip
    return "\r\n".join(lines).encode("latin-1") + body


async def open_loop(url: str, headers: dict[str, str], bodies: list[bytes], rate: float,
                    seconds: float) -> list[tuple[float, float, float, float]]:  # fmt: skip
    """(due, sent, done, status) per request, by CLOCK; status -1 when the connection failed."""
    loop = asyncio.get_running_loop()
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    requests = [request_bytes(url, headers, body) for body in bodies]
    idle: list[_Connection] = []
    results: list[tuple[float, float, float, float]] = []

    async def exchange(request: bytes) -> tuple[int, float]:
        """One request on an idle connection (the most recently used), else on a new one; once more on a new one
        when a reused connection turns out closed (the server's keep-alive timeout ended it meanwhile)."""
        while idle:
            conn = idle.pop()
            if conn.transport is not None and not conn.transport.is_closing():
                try:
                    answer = await send(conn, request)
                except ConnectionError:
                    break
                idle.append(conn)
                return answer
        _, conn = await loop.create_connection(_Connection, host, port)
        answer = await send(conn, request)
        idle.append(conn)
        return answer

    async def send(conn: _Connection, request: bytes) -> tuple[int, float]:
        if conn.transport is None:
            raise ConnectionError("the connection is closed")
        conn.waiter = loop.create_future()
        conn.transport.write(request)
        return await conn.waiter

    async def one(i: int, due: float) -> None:
        sent = CLOCK()
        try:
            status, done = await exchange(requests[i % len(requests)])
        except (OSError, ConnectionError):
            results.append((due, sent, CLOCK(), -1.0))
            return
        results.append((due, sent, done, float(status)))

    tasks = []
    start = CLOCK() + 0.1
    for i in range(int(rate * seconds)):
        due = start + i / rate
        delay = due - CLOCK()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    for conn in idle:
        if conn.transport is not None:
            conn.transport.close()
    return results

"""The API bench's lean HTTP generator: responses split anywhere are read whole, and it really talks HTTP/1.1."""

from __future__ import annotations

import asyncio
import itertools

import pytest
import uvloop

from bench.http_load import ResponseReader, open_loop, request_bytes

ANSWERS = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"score\":1}"
           b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\nwww-authenticate: Bearer\r\n\r\n{}"
           b"HTTP/1.1 204 No Content\r\n\r\n")


def test_responses_split_at_any_byte_are_read_whole_and_in_order() -> None:
    for cut in range(1, len(ANSWERS)):
        reader = ResponseReader()
        assert reader.feed(ANSWERS[:cut]) + reader.feed(ANSWERS[cut:]) == [200, 401, 204], cut
        assert not reader.buffer
    reader = ResponseReader()
    assert [s for b in ANSWERS for s in reader.feed(bytes([b]))] == [200, 401, 204]


def test_the_request_is_http_1_1_with_its_headers_and_length() -> None:
    raw = request_bytes("http://127.0.0.1:8000/v1/score", {"Authorization": "Bearer k"}, b'{"a": 1}')
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.split(b"\r\n") == [b"POST /v1/score HTTP/1.1", b"Host: 127.0.0.1:8000", b"Authorization: Bearer k",
                                   b"Content-Length: 8"]
    assert body == b'{"a": 1}'


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_open_loop_sends_every_request_at_its_due_time_to_a_real_server(loop: str) -> None:
    received: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(next(v for k, _, v in (h.partition(b": ") for h in head.split(b"\r\n"))
                              if k.lower() == b"content-length"))
            received.append(await reader.readexactly(length))
            status = b"200 OK" if received[-1] != b"bad" else b"422 Unprocessable"
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\n{}")

    async def run() -> list[tuple[float, float, float, float]]:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await open_loop(f"http://127.0.0.1:{port}/v1/score", {}, [b"one", b"bad"], 200.0, 0.5)
        finally:
            server.close()

    results = asyncio.run(run()) if loop == "asyncio" else uvloop.run(run())
    assert len(results) == 100 == len(received)
    assert sorted(r[3] for r in results) == [200.0] * 50 + [422.0] * 50
    dues = sorted(r[0] for r in results)
    assert all(abs((b - a) - 0.005) < 1e-9 for a, b in itertools.pairwise(dues))
    assert all(sent < done for _, sent, done, _ in results)

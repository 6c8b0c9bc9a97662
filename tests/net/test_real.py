"""The asyncio network: UDP, and TCP with RFC 7766 pipelining, idle timeout and limits."""

from __future__ import annotations

import asyncio

import pytest

from poisonproof.net.base import ExchangeTimeout, TcpLimits, Via
from poisonproof.net.framing import StreamDeframer, frame
from poisonproof.net.real import RealNetwork


class RefuseAll:
    def __init__(self) -> None:
        self.rejected: list[str] = []

    def check(self, data: bytes, sender) -> str | None:
        return "not today"

    def reject(self, reason: str) -> None:
        self.rejected.append(reason)


def echo_upper(data: bytes, peer, via: Via) -> bytes | None:
    if data == b"silence":
        return None
    if data == b"boom":
        raise RuntimeError("handler bug")
    return via.value.encode() + b":" + data.upper()


async def read_replies(reader: asyncio.StreamReader, count: int) -> list[bytes]:
    deframer = StreamDeframer()
    replies: list[bytes] = []
    while len(replies) < count:
        chunk = await asyncio.wait_for(reader.read(65536), 5)
        assert chunk, "connection closed early"
        replies += deframer.feed(chunk)
    return replies


def test_udp_serve_and_exchange_survive_handler_errors():
    async def main() -> None:
        network = RealNetwork()
        service = await network.serve_udp(("127.0.0.1", 0), echo_upper)
        try:
            data, sender = await network.udp_exchange(b"hi", service.address, timeout=2)
            assert (data, sender) == (b"udp:HI", service.address)
            with pytest.raises(ExchangeTimeout):
                await network.udp_exchange(b"boom", service.address, timeout=0.3)
            assert network.stats.handler_errors == 1
            refuse_all = RefuseAll()
            with pytest.raises(ExchangeTimeout):  # the filter rejects: keeps waiting
                await network.udp_exchange(
                    b"x", service.address, timeout=0.3, reply_filter=refuse_all
                )
            assert refuse_all.rejected == ["not today"]
            data, _ = await network.udp_exchange(b"still", service.address, timeout=2)
            assert data == b"udp:STILL"
        finally:
            await service.close()

    asyncio.run(main())


def test_tcp_pipelined_queries_on_one_connection_answered_in_order():
    async def main() -> None:
        network = RealNetwork()
        service = await network.serve_tcp(("127.0.0.1", 0), echo_upper)
        try:
            reader, writer = await asyncio.open_connection(*service.address)
            queries = [f"q{i}".encode() for i in range(50)]
            # all queries in one write, the last one split across two writes
            blob = b"".join(frame(q) for q in queries)
            writer.write(blob[:-3])
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(blob[-3:])
            replies = await read_replies(reader, len(queries))
            assert replies == [b"tcp:" + q.upper() for q in queries]
            writer.write(frame(b"boom") + frame(b"after"))  # a handler error keeps the stream
            assert await read_replies(reader, 1) == [b"tcp:AFTER"]
            writer.close()
            assert (await network.tcp_exchange(b"one", service.address, timeout=2)) == b"tcp:ONE"
        finally:
            await service.close()

    asyncio.run(main())


def test_tcp_idle_timeout_closes_connection():
    async def main() -> None:
        network = RealNetwork()
        service = await network.serve_tcp(("127.0.0.1", 0), echo_upper, TcpLimits(idle_timeout=0.3))
        try:
            reader, writer = await asyncio.open_connection(*service.address)
            writer.write(frame(b"a"))
            assert await read_replies(reader, 1) == [b"tcp:A"]
            writer.write(b"\x00")  # half a length prefix, then nothing
            assert await asyncio.wait_for(reader.read(), 3) == b""  # closed by the server
            assert network.stats.tcp_idle_closed == 1
            writer.close()
        finally:
            await service.close()

    asyncio.run(main())


def test_tcp_connection_limit_closes_extra_connections():
    async def main() -> None:
        network = RealNetwork()
        service = await network.serve_tcp(
            ("127.0.0.1", 0), echo_upper, TcpLimits(max_connections=2, idle_timeout=5)
        )
        try:
            held = [await asyncio.open_connection(*service.address) for _ in range(2)]
            for reader, writer in held:  # make sure both are being served
                writer.write(frame(b"x"))
                assert await read_replies(reader, 1) == [b"tcp:X"]
            reader, writer = await asyncio.open_connection(*service.address)
            assert await asyncio.wait_for(reader.read(), 3) == b""
            assert network.stats.tcp_refused == 1
            writer.close()
            for _, w in held:
                w.close()
            await asyncio.sleep(0.1)
            assert (await network.tcp_exchange(b"y", service.address, timeout=2)) == b"tcp:Y"
        finally:
            await service.close()

    asyncio.run(main())


def test_silent_handler_sends_nothing_over_tcp():
    async def main() -> None:
        network = RealNetwork()
        service = await network.serve_tcp(("127.0.0.1", 0), echo_upper)
        try:
            reader, writer = await asyncio.open_connection(*service.address)
            writer.write(frame(b"silence") + frame(b"z"))
            assert await read_replies(reader, 1) == [b"tcp:Z"]
            writer.close()
        finally:
            await service.close()

    asyncio.run(main())

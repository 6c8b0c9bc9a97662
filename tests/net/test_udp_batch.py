"""The batched UDP listener: recvmmsg/sendmmsg or a recvfrom loop, fast path, reuse-port."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from poisonproof.net.base import Address, Via
from poisonproof.net.real import RealNetwork
from poisonproof.net.udp_batch import BatchedUdpService, WithFastPath, bind_udp

BURST = 200


def handler(data: bytes, peer: Address, via: Via) -> Any:
    if data.startswith(b"boom"):
        raise RuntimeError("handler bug")
    if data.startswith(b"quiet"):
        return None
    if data.startswith(b"later"):

        async def later() -> bytes:
            await asyncio.sleep(0.01)
            return b"slow:" + data

        return later()
    return b"now:" + data


def fast(datagrams: list[bytes], peers: list[tuple[Any, ...]]) -> list[bytes | None]:
    assert all(peer[0] == "127.0.0.1" for peer in peers)
    return [b"fast:" + d if d.startswith(b"f") else None for d in datagrams]


def burst(port: int, messages: list[bytes], expected: int) -> set[bytes]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.settimeout(5)
        for message in messages:
            sock.sendto(message, ("127.0.0.1", port))
        return {sock.recvfrom(4096)[0] for _ in range(expected)}


@pytest.mark.parametrize("udp_io", ["mmsg", "loop"])
def test_a_burst_is_answered_now_later_or_not_and_errors_are_counted(udp_io: str) -> None:
    async def main() -> tuple[set[bytes], int, BatchedUdpService]:
        network = RealNetwork()
        network.udp_io = udp_io  # type: ignore[assignment]
        service = await network.serve_udp(("127.0.0.1", 0), WithFastPath(handler, fast))
        assert isinstance(service, BatchedUdpService)
        assert service.batched == (udp_io == "mmsg")
        kinds = [b"f", b"n", b"later", b"quiet", b"boom"]
        messages = [kinds[i % 5] + b"%d" % i for i in range(BURST)]
        answered = [m for m in messages if not m.startswith((b"quiet", b"boom"))]
        replies = await asyncio.to_thread(burst, service.address[1], messages, len(answered))
        await service.close()
        return replies, network.stats.handler_errors, service

    replies, errors, service = asyncio.run(main())
    expected = set()
    for i in range(BURST):
        kind = i % 5
        if kind == 0:
            expected.add(b"fast:f%d" % i)
        elif kind == 1:
            expected.add(b"now:n%d" % i)
        elif kind == 2:
            expected.add(b"slow:later%d" % i)
    assert replies == expected
    assert errors == BURST // 5
    assert service.datagrams == BURST
    if service.batched:
        assert service.wakeups < BURST  # several datagrams per recvmmsg


def test_reuse_port_lets_two_sockets_share_a_port() -> None:
    first = bind_udp(("127.0.0.1", 0), reuse_port=True)
    try:
        second = bind_udp(first.getsockname(), reuse_port=True)
        second.close()
        with pytest.raises(OSError):
            bind_udp(first.getsockname())
    finally:
        first.close()


def one_at_a_time(port: int, messages: list[bytes]) -> list[bytes | None]:
    """Each message sent once the previous one was answered (or 0.3 s passed)."""
    out: list[bytes | None] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        for message in messages:
            sock.sendto(message, ("127.0.0.1", port))
            try:
                out.append(sock.recvfrom(4096)[0])
            except TimeoutError:
                out.append(None)
    return out


def test_one_datagram_per_read_is_answered_the_same_way() -> None:
    async def main() -> tuple[list[bytes | None], int, BatchedUdpService]:
        network = RealNetwork()
        network.udp_io = "mmsg"
        service = await network.serve_udp(("127.0.0.1", 0), WithFastPath(handler, fast))
        assert isinstance(service, BatchedUdpService)
        messages = [b"f1", b"n2", b"later3", b"quiet4", b"boom5", b"f6", b"x" * 5000]
        replies = await asyncio.to_thread(one_at_a_time, service.address[1], messages)
        await service.close()
        return replies, network.stats.handler_errors, service

    replies, errors, service = asyncio.run(main())
    # the 5,000-byte datagram is longer than a read slot: truncated, so dropped
    assert replies == [b"fast:f1", b"now:n2", b"slow:later3", None, None, b"fast:f6", None]
    assert errors == 1
    if service.batched:
        assert service.wakeups == service.datagrams == 7  # each read took a single datagram

"""The real network: asyncio UDP and TCP sockets (uvloop when installed).

Owns: binding listeners, reading/writing datagrams and RFC 7766 streams, TCP idle timeouts
and connection limits, client-side exchanges from fresh source ports, the wall clock.
Must never: interpret DNS beyond the 2-byte TCP framing; decisions belong to the engines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from poisonproof.net.base import (
    DEFAULT_TCP_LIMITS,
    Address,
    ExchangeTimeout,
    MessageHandler,
    Network,
    TcpLimits,
    Via,
)
from poisonproof.net.framing import StreamDeframer, frame

log = logging.getLogger("poisonproof.net")

T = TypeVar("T")


class SystemClock:
    """The machine's clocks (libfaketime-style harnesses that fake them keep working)."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on uvloop when it is installed, else on the default asyncio loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is an optional speed-up
        return asyncio.run(main)
    return uvloop.run(main)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


@dataclass
class NetworkStats:
    """Counters a network keeps about what it carried and what went wrong."""

    handler_errors: int = 0
    tcp_refused: int = 0
    tcp_idle_closed: int = 0
    send_errors: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def _guarded(handler: MessageHandler, stats: NetworkStats) -> MessageHandler:
    """Wrap a handler so that an exception is counted and logged, never propagated."""

    def call(data: bytes, peer: Address, via: Via) -> bytes | None:
        try:
            return handler(data, peer, via)
        except Exception:  # a server never dies on a packet
            stats.handler_errors += 1
            log.exception("handler failed on a %d-byte %s message from %s", len(data), via, peer)
            return None

    return call


class _UdpServerProtocol(asyncio.DatagramProtocol):
    def __init__(self, handler: MessageHandler, stats: NetworkStats) -> None:
        self._handler = handler
        self._stats = stats
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        peer = (addr[0], addr[1])
        reply = self._handler(data, peer, Via.UDP)
        if reply is not None and self.transport is not None:
            try:
                self.transport.sendto(reply, addr)
            except OSError:
                self._stats.send_errors += 1

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable from a spoofed source, ...) must not stop the listener.
        self._stats.send_errors += 1


class UdpService:
    """A bound UDP listener."""

    def __init__(self, transport: asyncio.DatagramTransport) -> None:
        self._transport = transport
        sockname = transport.get_extra_info("sockname")
        self._address: Address = (sockname[0], sockname[1])

    @property
    def address(self) -> Address:
        return self._address

    async def close(self) -> None:
        self._transport.close()


class TcpService:
    """A bound TCP listener serving RFC 7766 DNS streams."""

    def __init__(self, handler: MessageHandler, limits: TcpLimits, stats: NetworkStats) -> None:
        self._handler = handler
        self._limits = limits
        self._stats = stats
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._address: Address = ("", 0)

    @property
    def address(self) -> Address:
        return self._address

    @property
    def open_connections(self) -> int:
        return len(self._tasks)

    async def start(self, address: Address) -> None:
        self._server = await asyncio.start_server(
            self._on_connection, host=address[0], port=address[1], reuse_address=True
        )
        sockname = self._server.sockets[0].getsockname()
        self._address = (sockname[0], sockname[1])

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._tasks) >= self._limits.max_connections:
            self._stats.tcp_refused += 1
            writer.close()
            return
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            await self._serve(reader, writer)
        except (ConnectionError, OSError):
            pass
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer: Address = (peername[0], peername[1])
        deframer = StreamDeframer()
        answered = 0
        while answered < self._limits.max_queries_per_connection:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), self._limits.idle_timeout)
            except TimeoutError:
                self._stats.tcp_idle_closed += 1
                return
            if not chunk:
                return
            for message in deframer.feed(chunk):
                reply = self._handler(message, peer, Via.TCP)
                answered += 1
                if reply is not None:
                    writer.write(frame(reply))
            await writer.drain()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()


class _ExchangeProtocol(asyncio.DatagramProtocol):
    def __init__(self, accept: Callable[[bytes, Address], bool] | None) -> None:
        self._accept = accept
        self.reply: asyncio.Future[tuple[bytes, Address]] = (
            asyncio.get_running_loop().create_future()
        )
        self.unwanted = 0

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        sender: Address = (addr[0], addr[1])
        if self.reply.done():
            return
        if self._accept is None or self._accept(data, sender):
            self.reply.set_result((data, sender))
        else:
            self.unwanted += 1

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


class RealNetwork(Network):
    """The `Network` over the host's sockets."""

    def __init__(self) -> None:
        self.clock = SystemClock()
        self.stats = NetworkStats()

    async def serve_udp(self, address: Address, handler: MessageHandler) -> UdpService:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpServerProtocol(_guarded(handler, self.stats), self.stats),
            local_addr=address,
            family=_family(address[0]),
        )
        return UdpService(transport)

    async def serve_tcp(
        self, address: Address, handler: MessageHandler, limits: TcpLimits = DEFAULT_TCP_LIMITS
    ) -> TcpService:
        service = TcpService(_guarded(handler, self.stats), limits, self.stats)
        await service.start(address)
        return service

    async def udp_exchange(
        self,
        query: bytes,
        server: Address,
        *,
        timeout: float,
        source: Address | None = None,
        accept: Callable[[bytes, Address], bool] | None = None,
    ) -> tuple[bytes, Address]:
        loop = asyncio.get_running_loop()
        local = source if source is not None else ("::" if ":" in server[0] else "0.0.0.0", 0)
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _ExchangeProtocol(accept), local_addr=local, family=_family(server[0])
        )
        try:
            transport.sendto(query, server)
            try:
                return await asyncio.wait_for(protocol.reply, timeout)
            except TimeoutError:
                raise ExchangeTimeout(
                    f"no reply from {server[0]}#{server[1]} in {timeout}s"
                ) from None
        finally:
            transport.close()

    async def tcp_exchange(self, query: bytes, server: Address, *, timeout: float) -> bytes:
        async def exchange() -> bytes:
            reader, writer = await asyncio.open_connection(server[0], server[1])
            try:
                writer.write(frame(query))
                await writer.drain()
                length = int.from_bytes(await reader.readexactly(2), "big")
                return await reader.readexactly(length)
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

        try:
            return await asyncio.wait_for(exchange(), timeout)
        except TimeoutError:
            raise ExchangeTimeout(
                f"no TCP reply from {server[0]}#{server[1]} in {timeout}s"
            ) from None

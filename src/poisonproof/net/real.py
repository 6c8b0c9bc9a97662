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
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from poisonproof.net.base import (
    DEFAULT_TCP_LIMITS,
    Address,
    ExchangeTimeout,
    MessageHandler,
    Network,
    ReplyFilter,
    TcpLimits,
    Via,
)
from poisonproof.net.framing import StreamDeframer, frame
from poisonproof.net.udp_batch import BatchedUdpService, UdpIo, bind_udp, default_udp_io
from poisonproof.net.waiters import Waiter, offer

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


def _bound_udp(local: Address, family: socket.AddressFamily) -> socket.socket:
    """A non-blocking UDP socket bound to `local` (an IP literal: nothing to resolve)."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind(local)
    except OSError:
        sock.close()
        raise
    return sock


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

    def failed(data: bytes, peer: Address, via: Via) -> None:
        stats.handler_errors += 1
        log.exception("handler failed on a %d-byte %s message from %s", len(data), via, peer)

    async def later(
        pending: Awaitable[bytes | None], data: bytes, peer: Address, via: Via
    ) -> bytes | None:
        try:
            return await pending
        except asyncio.CancelledError:
            raise
        except Exception:
            failed(data, peer, via)
            return None

    def call(data: bytes, peer: Address, via: Via) -> bytes | None | Awaitable[bytes | None]:
        try:
            reply = handler(data, peer, via)
        except Exception:  # a server never dies on a packet
            failed(data, peer, via)
            return None
        if reply is None or isinstance(reply, bytes):
            return reply
        return later(reply, data, peer, via)

    return call


def _with_errno(error: OSError) -> OSError:
    """uvloop raises a bind failure without errno, the real one attached as its cause."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno is not None:
            return OSError(cause.errno, cause.strerror or str(cause))
        cause = cause.__cause__ or cause.__context__
    return error


class _UdpServerProtocol(asyncio.DatagramProtocol):
    def __init__(self, handler: MessageHandler, stats: NetworkStats) -> None:
        self._handler = handler
        self._stats = stats
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        peer = (addr[0], addr[1])
        reply = self._handler(data, peer, Via.UDP)
        if reply is None:
            return
        if isinstance(reply, bytes):
            self._send(reply, addr)
            return
        task = asyncio.ensure_future(self._send_later(reply, addr))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _send_later(self, reply: Awaitable[bytes | None], addr: tuple[Any, ...]) -> None:
        data = await reply
        if data is not None:
            self._send(data, addr)

    def _send(self, reply: bytes, addr: tuple[Any, ...]) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        try:
            self.transport.sendto(reply, addr)
        except OSError:
            self._stats.send_errors += 1

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable from a spoofed source, ...) must not stop the listener.
        self._stats.send_errors += 1


class UdpService:
    """A bound UDP listener."""

    def __init__(self, transport: asyncio.DatagramTransport, protocol: _UdpServerProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        sockname = transport.get_extra_info("sockname")
        self._address: Address = (sockname[0], sockname[1])

    @property
    def address(self) -> Address:
        return self._address

    async def drain(self) -> None:
        """Wait until every reply still being worked out has been sent."""
        while self._protocol.pending:
            await asyncio.gather(*self._protocol.pending, return_exceptions=True)

    async def close(self) -> None:
        await self.drain()
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

    async def start(self, address: Address, *, reuse_port: bool = False) -> None:
        self._server = await asyncio.start_server(
            self._on_connection,
            host=address[0],
            port=address[1],
            reuse_address=True,
            reuse_port=reuse_port or None,
        )
        sockname = self._server.sockets[0].getsockname()
        self._address = (sockname[0], sockname[1])

    async def start_on(self, sock: socket.socket) -> None:
        """Serve on a bound, listening socket handed over (systemd socket activation)."""
        self._server = await asyncio.start_server(self._on_connection, sock=sock)
        sockname = sock.getsockname()
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
        pending: set[asyncio.Task[None]] = set()

        async def write_later(reply: Awaitable[bytes | None]) -> None:
            data = await reply
            if data is not None and not writer.is_closing():
                writer.write(frame(data))

        try:
            while answered < self._limits.max_queries_per_connection:
                try:
                    chunk = await asyncio.wait_for(reader.read(65536), self._limits.idle_timeout)
                except TimeoutError:
                    if pending:
                        continue  # answers still being worked out: not idle
                    self._stats.tcp_idle_closed += 1
                    return
                if not chunk:
                    return
                for message in deframer.feed(chunk):
                    reply = self._handler(message, peer, Via.TCP)
                    answered += 1
                    if isinstance(reply, bytes):
                        writer.write(frame(reply))
                    elif reply is not None:
                        task = asyncio.ensure_future(write_later(reply))
                        pending.add(task)
                        task.add_done_callback(pending.discard)
                await writer.drain()
        finally:
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
                with contextlib.suppress(ConnectionError, OSError):
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


class _SourcePort:
    """One bound UDP socket and the queries waiting on it for their replies.

    Read straight from the event loop (`add_reader`, recvfrom until empty) rather than
    through an asyncio datagram transport: a cold resolution opens a socket per upstream
    query, and a transport's set-up and tear-down cost more than the exchange itself.
    """

    LINGER = 2.0
    """Seconds a shared port stays bound after its last query, to be reused at once."""
    READS = 64
    """Datagrams read per wake-up at most (then the loop runs others first)."""

    def __init__(
        self, sock: socket.socket, ports: dict[Address, _SourcePort] | None, key: Address
    ) -> None:
        self._sock = sock
        self._ports = ports
        self._key = key
        self.waiters: list[Waiter] = []
        self.closed = False
        self._linger: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        recvfrom = self._sock.recvfrom
        for _ in range(self.READS):
            try:
                data, addr = recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionRefusedError as error:  # ICMP port unreachable
                for waiter in self.waiters:
                    if not waiter.future.done():
                        waiter.future.set_exception(error)
                continue
            except OSError:
                continue  # another ICMP error: the queries wait on for their replies
            offer(self.waiters, data, (addr[0], addr[1]))

    def sendto(self, data: bytes, server: Address) -> None:
        self._sock.sendto(data, server)

    def add(self, waiter: Waiter) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        self.waiters.append(waiter)

    def remove(self, waiter: Waiter) -> None:
        self.waiters.remove(waiter)
        if self.waiters or self.closed:
            return
        if self._ports is None:
            self._close()
        else:
            self._linger = self._loop.call_later(self.LINGER, self._close)

    def _close(self) -> None:
        if self.waiters or self.closed:
            return
        if self._ports is not None and self._ports.get(self._key) is self:
            del self._ports[self._key]
        self.closed = True
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()


def _expire(future: asyncio.Future[Any], server: Address, timeout: float) -> None:
    """An exchange's timer: no reply came in time."""
    if not future.done():
        future.set_exception(
            ExchangeTimeout(f"no reply from {server[0]}#{server[1]} in {timeout:.2f}s")
        )


class RealNetwork(Network):
    """The `Network` over the host's sockets."""

    def __init__(self) -> None:
        self.clock = SystemClock()
        self.stats = NetworkStats()
        self._ports: dict[Address, _SourcePort] = {}
        self.reuse_port = False
        """Listeners set SO_REUSEPORT, so several processes can serve one port."""
        self.udp_io: UdpIo = default_udp_io()
        """How UDP listeners read: recvmmsg batches, a recvfrom loop, or asyncio's transport."""

    async def serve_udp(
        self, address: Address, handler: MessageHandler
    ) -> UdpService | BatchedUdpService:
        if self.udp_io != "transport":
            try:
                sock = bind_udp(address, reuse_port=self.reuse_port)
            except OSError as error:
                raise _with_errno(error) from None
            return BatchedUdpService(sock, handler, self.stats, mmsg=self.udp_io == "mmsg")
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: _UdpServerProtocol(_guarded(handler, self.stats), self.stats),
                local_addr=address,
                family=_family(address[0]),
            )
        except OSError as error:
            raise _with_errno(error) from None
        return UdpService(transport, protocol)

    async def serve_tcp(
        self, address: Address, handler: MessageHandler, limits: TcpLimits = DEFAULT_TCP_LIMITS
    ) -> TcpService:
        service = TcpService(_guarded(handler, self.stats), limits, self.stats)
        await service.start(address, reuse_port=self.reuse_port)
        return service

    async def udp_exchange(
        self,
        query: bytes,
        server: Address,
        *,
        timeout: float,
        source: Address | None = None,
        reply_filter: ReplyFilter | None = None,
    ) -> tuple[bytes, Address]:
        loop = asyncio.get_running_loop()
        family = _family(server[0])
        if source is None or source[1] == 0:
            local = source or ("::" if family == socket.AF_INET6 else "0.0.0.0", 0)
            port = _SourcePort(_bound_udp(local, family), None, local)
        else:
            known = self._ports.get(source)
            if known is None or known.closed:
                known = _SourcePort(_bound_udp(source, family), self._ports, source)
                self._ports[source] = known
            port = known
        waiter = Waiter(reply_filter, loop.create_future())
        port.add(waiter)
        # a timer on the reply's own future, not asyncio.wait_for: wait_for puts a second
        # future and a callback between the reply and this coroutine (one more turn of the
        # loop on every exchange's critical path)
        expiry = loop.call_later(timeout, _expire, waiter.future, server, timeout)
        try:
            port.sendto(query, server)
            return await waiter.future
        finally:
            expiry.cancel()
            port.remove(waiter)

    async def serve_udp_socket(self, sock: socket.socket, handler: MessageHandler) -> UdpService:
        """Serve on a bound UDP socket handed over (systemd socket activation)."""
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _UdpServerProtocol(_guarded(handler, self.stats), self.stats), sock=sock
        )
        return UdpService(transport, protocol)

    async def serve_tcp_socket(
        self, sock: socket.socket, handler: MessageHandler, limits: TcpLimits = DEFAULT_TCP_LIMITS
    ) -> TcpService:
        """Serve on a listening TCP socket handed over (systemd socket activation)."""
        service = TcpService(_guarded(handler, self.stats), limits, self.stats)
        await service.start_on(sock)
        return service

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

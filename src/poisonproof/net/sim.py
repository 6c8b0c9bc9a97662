"""The simulated network: hosts, links and an off-path attacker, in virtual time.

Owns: UDP and TCP between simulated addresses with per-link latency, jitter, loss and
bandwidth; source ports (shared while queries wait on them, as on the real network);
injection of datagrams with any source address and port (the attacker); a packet trace
that can be written as pcap. Everything random comes from one seeded generator, so the
same seed gives the same trace.
Must never: open a real socket or read the real clock; it runs on a `VirtualTimeLoop`.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

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
from poisonproof.net.pcap import Packet, write_pcap
from poisonproof.net.virtual_time import VirtualTimeLoop
from poisonproof.net.waiters import Waiter, offer

log = logging.getLogger("poisonproof.sim")

EPHEMERAL = (1024, 65535)
DEFAULT_EPOCH = 1_767_225_600.0
"""2026-01-01T00:00:00Z: what `wall()` reads at virtual time 0 unless told otherwise."""

Latency = float | Callable[[random.Random], float]
FallbackHandler = Callable[[bytes, Address, Address, Via], "bytes | None | Awaitable[bytes | None]"]
"""(data, source, destination, transport) -> reply: a server at every unbound address."""


@dataclass(frozen=True)
class Link:
    """One-way properties of the path between two hosts (used in both directions)."""

    latency: Latency = 0.005
    """Seconds, or a function drawing seconds from the simulation's generator."""
    jitter: float = 0.0
    """Standard deviation (seconds) of a normal delay added to each packet (never < 0)."""
    loss: float = 0.0
    """Probability that a UDP datagram is lost."""
    bandwidth: float | None = None
    """Bytes per second through the link (serialization delay and queueing), or unlimited."""


class SimClock:
    """Virtual time: `monotonic()` is the loop's time, `wall()` an epoch plus it."""

    def __init__(self, loop: VirtualTimeLoop, epoch: float = DEFAULT_EPOCH) -> None:
        self.loop = loop
        self.epoch = epoch

    def monotonic(self) -> float:
        return self.loop.time()

    def wall(self) -> float:
        return self.epoch + self.loop.time()


@dataclass
class SimStats:
    sent: int = 0
    delivered: int = 0
    lost: int = 0
    unreachable: int = 0
    injected: int = 0
    handler_errors: int = 0


class _ClientPort:
    """A bound source port and the queries waiting on it."""

    def __init__(self) -> None:
        self.waiters: list[Waiter] = []

    def deliver(self, data: bytes, src: Address) -> None:
        offer(self.waiters, data, src)


class _UdpServer:
    def __init__(self, network: SimNetwork, address: Address, handler: MessageHandler) -> None:
        self.network = network
        self.address = address
        self.handler = handler
        self.pending: set[asyncio.Task[None]] = set()

    def deliver(self, data: bytes, src: Address) -> None:
        try:
            reply = self.handler(data, src, Via.UDP)
        except Exception:
            self.network.stats.handler_errors += 1
            log.exception("simulated UDP handler at %s failed", self.address)
            return
        if reply is None:
            return
        if isinstance(reply, bytes):
            self.network.send(self.address, src, reply)
            return
        task = asyncio.ensure_future(self._later(reply, src))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _later(self, reply: Awaitable[bytes | None], src: Address) -> None:
        try:
            data = await reply
        except Exception:
            self.network.stats.handler_errors += 1
            log.exception("simulated UDP handler at %s failed", self.address)
            return
        bound = self.network.udp_bound(self.address)
        if data is not None and (bound is self or bound is None):
            self.network.send(self.address, src, data)


class SimService:
    def __init__(self, network: SimNetwork, address: Address, kind: str) -> None:
        self._network = network
        self._address = address
        self._kind = kind

    @property
    def address(self) -> Address:
        return self._address

    async def close(self) -> None:
        server = self._network._udp.get(self._address) if self._kind == "udp" else None
        if isinstance(server, _UdpServer) and server.pending:
            await asyncio.gather(*server.pending, return_exceptions=True)
        self._network._unbind(self._kind, self._address)


@dataclass
class _TcpServer:
    handler: MessageHandler
    limits: TcpLimits
    connections: int = 0


class SimNetwork(Network):
    """A `Network` of simulated hosts on a `VirtualTimeLoop`."""

    def __init__(
        self,
        loop: VirtualTimeLoop,
        *,
        seed: int = 0,
        default_link: Link = Link(),  # noqa: B008 - frozen
        epoch: float = DEFAULT_EPOCH,
        trace: bool = True,
    ) -> None:
        self.loop = loop
        self.clock = SimClock(loop, epoch)
        self.rng = random.Random(seed)
        self.default_link = default_link
        self.trace_enabled = trace
        self.packets: list[Packet] = []
        self.stats = SimStats()
        self._links: dict[tuple[str, str], Link] = {}
        self._busy_until: dict[tuple[str, str], float] = {}
        self._udp: dict[Address, _UdpServer | _ClientPort] = {}
        self._tcp: dict[Address, _TcpServer] = {}
        self.wait_hooks: list[Callable[[str, int, ReplyFilter | None], None]] = []
        """Called (host, port, filter) whenever a query starts waiting for its reply."""
        self.fallback: FallbackHandler | None = None
        """Answers for addresses nobody listens on (scripted scenario servers), or None."""

    # -- topology ----------------------------------------------------------------------

    def set_link(self, a: str, b: str, link: Link) -> None:
        """Set the path between hosts `a` and `b` (both directions)."""
        self._links[(a, b)] = link
        self._links[(b, a)] = link

    def link(self, a: str, b: str) -> Link:
        return self._links.get((a, b), self.default_link)

    def _delay(self, src_host: str, dst_host: str, size: int) -> float | None:
        """Seconds until a packet sent now arrives, or None when it is lost."""
        link = self.link(src_host, dst_host)
        if link.loss and self.rng.random() < link.loss:
            return None
        base = link.latency(self.rng) if callable(link.latency) else link.latency
        if link.jitter:
            base = max(0.0, base + self.rng.gauss(0.0, link.jitter))
        now = self.loop.time()
        if link.bandwidth:
            key = (src_host, dst_host)
            start = max(now, self._busy_until.get(key, now))
            done = start + size / link.bandwidth
            self._busy_until[key] = done
            return done - now + base
        return base

    # -- datagrams -----------------------------------------------------------------------

    def udp_bound(self, address: Address) -> _UdpServer | _ClientPort | None:
        return self._udp.get(address)

    def send(
        self,
        src: Address,
        dst: Address,
        data: bytes,
        *,
        origin: str | None = None,
        spoofed: bool = False,
    ) -> None:
        """Send a datagram; `origin` is the host it really leaves from (an attacker)."""
        self.stats.sent += 1
        delay = self._delay(origin or src[0], dst[0], len(data) + 28)
        if self.trace_enabled:
            self.packets.append(
                Packet(self.clock.wall(), "udp", src, dst, data, spoofed, delay is None)
            )
        if delay is None:
            self.stats.lost += 1
            return
        self.loop.call_later(delay, self._arrive, src, dst, data)

    def inject(
        self, src: Address, dst: Address, data: bytes, *, origin: str, delay: float = 0.0
    ) -> None:
        """An attacker at host `origin` sends a datagram claiming to come from `src`."""
        self.stats.injected += 1
        if delay > 0:
            self.loop.call_later(
                delay, lambda: self.send(src, dst, data, origin=origin, spoofed=True)
            )
        else:
            self.send(src, dst, data, origin=origin, spoofed=True)

    def arrive(self, src: Address, dst: Address, data: bytes) -> None:
        """A forged datagram lands at `dst` now (its travel was accounted by the sender)."""
        self.stats.sent += 1
        self.stats.injected += 1
        if self.trace_enabled:
            self.packets.append(Packet(self.clock.wall(), "udp", src, dst, data, True, False))
        self._arrive(src, dst, data)

    def _arrive(self, src: Address, dst: Address, data: bytes) -> None:
        endpoint = self._udp.get(dst)
        if endpoint is None and self.fallback is not None:
            endpoint = _UdpServer(self, dst, self._fallback_for(dst))
        if endpoint is None:
            self.stats.unreachable += 1
            return
        self.stats.delivered += 1
        endpoint.deliver(data, src)

    def _fallback_for(self, dst: Address) -> MessageHandler:
        fallback = self.fallback
        assert fallback is not None

        def handler(data: bytes, src: Address, via: Via) -> bytes | None | Awaitable[bytes | None]:
            return fallback(data, src, dst, via)

        return handler

    def _free_port(self, host: str, table: dict[Address, object]) -> int:
        low, high = EPHEMERAL
        for _ in range(1000):
            port = self.rng.randint(low, high)
            if (host, port) not in table:
                return port
        raise OSError(errno.EADDRINUSE, f"no free simulated port on {host}")

    def _unbind(self, kind: str, address: Address) -> None:
        table: dict[Address, object] = self._udp if kind == "udp" else self._tcp  # type: ignore[assignment]
        table.pop(address, None)

    def waiting_queries(self, host: str) -> list[tuple[int, list[ReplyFilter]]]:
        """(port, filters of the queries waiting there) on `host`: what a flood of guesses
        is checked against (the simulator's view, not the attacker's)."""
        found = []
        for (ip, port), endpoint in self._udp.items():
            if ip == host and isinstance(endpoint, _ClientPort):
                live = [w.reply_filter for w in endpoint.waiters if not w.future.done()]
                found.append((port, [f for f in live if f is not None]))
        return found

    # -- the Network interface ---------------------------------------------------------

    async def serve_udp(self, address: Address, handler: MessageHandler) -> SimService:
        if address[1] == 0:
            address = (address[0], self._free_port(address[0], self._udp))  # type: ignore[arg-type]
        if address in self._udp:
            raise OSError(errno.EADDRINUSE, f"{address[0]}#{address[1]} is in use (simulated)")
        self._udp[address] = _UdpServer(self, address, handler)
        return SimService(self, address, "udp")

    async def serve_tcp(
        self, address: Address, handler: MessageHandler, limits: TcpLimits = DEFAULT_TCP_LIMITS
    ) -> SimService:
        if address[1] == 0:
            address = (address[0], self._free_port(address[0], self._tcp))  # type: ignore[arg-type]
        if address in self._tcp:
            raise OSError(errno.EADDRINUSE, f"{address[0]}#{address[1]} is in use (simulated)")
        self._tcp[address] = _TcpServer(handler, limits)
        return SimService(self, address, "tcp")

    async def udp_exchange(
        self,
        query: bytes,
        server: Address,
        *,
        timeout: float,
        source: Address | None = None,
        reply_filter: ReplyFilter | None = None,
    ) -> tuple[bytes, Address]:
        host = source[0] if source else _default_source(server)
        if host in ("0.0.0.0", "::"):
            host = _default_source(server)
        port = source[1] if source and source[1] else self._free_port(host, self._udp)  # type: ignore[arg-type]
        local = (host, port)
        endpoint = self._udp.get(local)
        if endpoint is None:
            endpoint = self._udp[local] = _ClientPort()
        elif not isinstance(endpoint, _ClientPort):
            raise OSError(errno.EADDRINUSE, f"{host}#{port} is a server port (simulated)")
        waiter = Waiter(reply_filter, self.loop.create_future())
        endpoint.waiters.append(waiter)
        try:
            self.send(local, server, query)
            for hook in self.wait_hooks:
                hook(host, port, reply_filter)
            try:
                return await asyncio.wait_for(waiter.future, timeout)
            except TimeoutError:
                raise ExchangeTimeout(
                    f"no reply from {server[0]}#{server[1]} in {timeout:.2f}s"
                ) from None
        finally:
            endpoint.waiters.remove(waiter)
            if not endpoint.waiters and self._udp.get(local) is endpoint:
                del self._udp[local]

    async def tcp_exchange(self, query: bytes, server: Address, *, timeout: float) -> bytes:
        return await asyncio.wait_for(self._tcp_exchange(query, server), timeout)

    async def _tcp_exchange(self, query: bytes, server: Address) -> bytes:
        host = _default_source(server)
        local = (host, self._free_port(host, self._tcp))  # type: ignore[arg-type]
        link = self.link(host, server[0])
        one_way = link.latency(self.rng) if callable(link.latency) else link.latency
        await asyncio.sleep(2 * one_way)  # SYN, SYN-ACK (TCP retransmits: no loss, no forgery)
        target = self._tcp.get(server)
        if target is None and self.fallback is not None:
            target = _TcpServer(self._fallback_for(server), DEFAULT_TCP_LIMITS)
        if target is None:
            raise ConnectionRefusedError(
                errno.ECONNREFUSED, f"{server[0]}#{server[1]} refused (simulated)"
            )
        if target.connections >= target.limits.max_connections:
            raise ConnectionResetError(errno.ECONNRESET, "connection limit (simulated)")
        target.connections += 1
        try:
            self._record_tcp(local, server, query)
            await asyncio.sleep(one_way)
            reply = target.handler(query, local, Via.TCP)
            if reply is not None and not isinstance(reply, bytes):
                reply = await reply
            if reply is None:
                raise ConnectionResetError(errno.ECONNRESET, "closed without a reply (simulated)")
            self._record_tcp(server, local, reply)
            await asyncio.sleep(one_way)
            return reply
        finally:
            target.connections -= 1

    def _record_tcp(self, src: Address, dst: Address, data: bytes) -> None:
        self.stats.sent += 1
        if self.trace_enabled:
            self.packets.append(Packet(self.clock.wall(), "tcp", src, dst, data))

    # -- the trace -----------------------------------------------------------------------

    def write_pcap(self, path: str | Path) -> int:
        return write_pcap(path, self.packets)


def _default_source(server: Address) -> str:
    return "::1" if ":" in server[0] else "127.0.0.1"


@dataclass
class Simulation:
    """A virtual-time loop and a simulated network on it, ready to run coroutines."""

    seed: int = 0
    epoch: float = DEFAULT_EPOCH
    default_link: Link = field(default_factory=Link)
    trace: bool = True

    def __post_init__(self) -> None:
        self.loop = VirtualTimeLoop()
        self.network = SimNetwork(
            self.loop,
            seed=self.seed,
            default_link=self.default_link,
            epoch=self.epoch,
            trace=self.trace,
        )

    def run(self, main: Awaitable[object]) -> object:
        return self.loop.run_until_complete(main)

    def close(self) -> None:
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

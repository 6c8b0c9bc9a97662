"""The `Network` interface that every network (real sockets, virtual-time simulation) implements.

Owns: the types shared by the engines and the networks (addresses, the transport kind,
message handlers, the clock protocol, TCP limits) and the abstract `Network`.
Must never: open a socket, read the system clock, or know about DNS semantics.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

Address = tuple[str, int]
"""(IP address text, port). IPv6 addresses are plain text without brackets."""


class Via(enum.Enum):
    """The transport a message arrived on; the engines answer differently (TC only on UDP)."""

    UDP = "udp"
    TCP = "tcp"


MessageHandler = Callable[[bytes, Address, Via], "bytes | None | Awaitable[bytes | None]"]
"""Takes one DNS message and the peer's address; returns the reply, or None to stay silent.

A handler that can answer at once returns the bytes (the authoritative engine always
does); one that must wait (a resolver on a cache miss) returns an awaitable of the reply,
and the network sends it when it completes (over TCP possibly out of order, RFC 7766).
A handler must not raise for any input; a network still guards against it (counts,
logs, keeps serving) because a server never dies on a packet.
"""


class Clock(Protocol):
    """Time as the engines see it: injected, so a simulation can run in virtual time."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; for timeouts, TTL ageing and rates."""
        ...

    def wall(self) -> float:
        """Seconds since the Unix epoch; for DNSSEC validity windows and logs."""
        ...


class ManualClock:
    """A `Clock` that reads `now`, moved by its owner (tests; a cache file read offline)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now


@dataclass(frozen=True)
class TcpLimits:
    """RFC 7766 server-side limits for DNS over TCP."""

    idle_timeout: float = 10.0
    """Seconds a connection may stay without a complete query before it is closed."""
    max_connections: int = 256
    """Connections served at once; further ones are closed at accept."""
    max_queries_per_connection: int = 10_000


DEFAULT_TCP_LIMITS = TcpLimits()


class Service(Protocol):
    """A listener started by a network: knows its bound address and how to stop."""

    @property
    def address(self) -> Address: ...

    async def close(self) -> None: ...


class ReplyFilter(Protocol):
    """Decides which datagram arriving at a query's source port is its reply.

    `check` must be pure (several outstanding queries may share one port and each
    datagram is checked against all of them); `reject` records a datagram that no
    query accepted, with the reason `check` gave.
    """

    def check(self, data: bytes, sender: Address) -> str | None:
        """None to accept `data` as the reply; otherwise why it is not."""
        ...

    def reject(self, reason: str) -> None: ...


class ExchangeTimeout(Exception):
    """No acceptable reply arrived before the deadline."""


class Network(abc.ABC):
    """What the servers and the resolver need from a network, and nothing more."""

    clock: Clock

    @abc.abstractmethod
    async def serve_udp(self, address: Address, handler: MessageHandler) -> Service:
        """Answer datagrams arriving at `address` with `handler`."""

    @abc.abstractmethod
    async def serve_tcp(
        self, address: Address, handler: MessageHandler, limits: TcpLimits = DEFAULT_TCP_LIMITS
    ) -> Service:
        """Answer RFC 7766 length-prefixed messages on TCP connections to `address`."""

    @abc.abstractmethod
    async def udp_exchange(
        self,
        query: bytes,
        server: Address,
        *,
        timeout: float,
        source: Address | None = None,
        reply_filter: ReplyFilter | None = None,
    ) -> tuple[bytes, Address]:
        """Send `query` from `source` (a fresh ephemeral port when None or port 0) to `server`.

        Returns the first datagram `reply_filter` accepts (any datagram when it is None);
        raises `ExchangeTimeout` after `timeout` seconds. Queries given the same source
        address and port share one socket while they are outstanding, as a resolver with
        a fixed query port does.
        """

    @abc.abstractmethod
    async def tcp_exchange(self, query: bytes, server: Address, *, timeout: float) -> bytes:
        """Send one query over a new TCP connection and return the first reply message."""

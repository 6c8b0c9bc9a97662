"""A flood of forged replies, batched: one event carries many guesses, checked exactly.

Owns: sending a window's worth of guesses (server × port × transaction ID, in the order a
`GuessSequence` gives) at a rate, as events of many guesses each; finding exactly which
guess, if any, matches a query the resolver has outstanding when it lands (including
queries that start while a batch is in flight), delivering that one forged reply through
the resolver's real acceptance test at its exact arrival time, and charging every other
guess that lands on a waiting port to that query (wrong ID / wrong source), in bulk.
In `per_packet` mode every guess is a real datagram instead (slow; the two modes agree).
Must never: look at anything an off-path attacker could not know when choosing guesses;
the simulator's view of outstanding queries is used only to decide what the guesses hit.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass

from poisonproof.lab.guesses import GuessSequence
from poisonproof.lab.theory import ID_SPACE
from poisonproof.net.base import Address, ReplyFilter
from poisonproof.net.sim import SimNetwork


@dataclass(frozen=True)
class GuessSpace:
    """What the attacker guesses among: the servers to impersonate, the ports, and the
    IDs: `id_count` of them from `id_base` on (mod 2^16); all 65,536 unless the attacker
    predicts a window of them."""

    servers: tuple[Address, ...]
    ports: tuple[int, ...] | range
    id_base: int = 0
    id_count: int = ID_SPACE

    def __post_init__(self) -> None:
        if not 0 < self.id_count <= ID_SPACE or not 0 <= self.id_base < ID_SPACE:
            raise ValueError(f"ID window {self.id_base}+{self.id_count} is not within 16 bits")

    @property
    def size(self) -> int:
        return len(self.servers) * len(self.ports) * self.id_count

    def target(self, server: Address, port: int, txid: int) -> int | None:
        """The index of (server, port, txid) in the space, or None if it is outside it."""
        offset = (txid - self.id_base) % ID_SPACE
        if offset >= self.id_count:
            return None
        try:
            s = self.servers.index(server)
            p = self.ports.index(port)
        except ValueError:
            return None
        return (s * len(self.ports) + p) * self.id_count + offset

    def decode(self, value: int) -> tuple[Address, int, int]:
        block, offset = divmod(value, self.id_count)
        s, p = divmod(block, len(self.ports))
        return self.servers[s], self.ports[p], (self.id_base + offset) % ID_SPACE


ForgeReply = Callable[[Address, int, int], bytes]
"""(impersonated server, port, txid) -> the forged reply's bytes (the attacker's guess)."""


@dataclass
class FloodStats:
    sent: int = 0
    hits: int = 0
    charged: int = 0


class Flood:
    """One window of guesses from `origin` at `rate`, landing `latency` after sending."""

    def __init__(
        self,
        net: SimNetwork,
        target_host: str,
        space: GuessSpace,
        sequence: GuessSequence,
        forge: ForgeReply,
        *,
        origin: str,
        rate: float,
        latency: float,
        per_packet: bool = False,
    ) -> None:
        self.net = net
        self.host = target_host
        self.space = space
        self.seq = sequence
        self.forge = forge
        self.origin = origin
        self.rate = rate
        self.latency = latency
        self.per_packet = per_packet
        self.stats = FloodStats()
        self._in_flight: tuple[int, int, float] | None = None
        """(first index, count, arrival time of the first) of the batch landing now."""

    async def run(self, guesses: int, batches: int = 16) -> None:
        """Send `guesses` guesses (capped at the space) over guesses/rate seconds."""
        guesses = min(guesses, self.space.size)
        hook = self._new_waiter
        self.net.wait_hooks.append(hook)
        try:
            per_batch = max(1, math.ceil(guesses / batches))
            start = 0
            while start < guesses:
                count = min(per_batch, guesses - start)
                if self.per_packet:
                    self._send_packets(start, count)
                else:
                    self.net.loop.call_later(self.latency, self._land, start, count)
                self.stats.sent += count
                start += count
                await asyncio.sleep(count / self.rate)
            await asyncio.sleep(self.latency)  # until the last batch has landed
        finally:
            self.net.wait_hooks.remove(hook)

    # -- batched mode -------------------------------------------------------------------

    def _land(self, first: int, count: int) -> None:
        now = self.net.loop.time()
        self._in_flight = (first, count, now)
        self.net.loop.call_later(count / self.rate, self._landed, first)
        for port, filters in self.net.waiting_queries(self.host):
            for reply_filter in filters:
                self._check(reply_filter, port, first, count, now)

    def _landed(self, first: int) -> None:
        if self._in_flight is not None and self._in_flight[0] == first:
            self._in_flight = None

    def _new_waiter(self, host: str, port: int, reply_filter: ReplyFilter | None) -> None:
        """A query started while a batch is landing: the rest of the batch may hit it."""
        if host != self.host or reply_filter is None or self._in_flight is None:
            return
        first, count, arrived = self._in_flight
        done = math.ceil((self.net.loop.time() - arrived) * self.rate - 1e-9)
        if done < count:
            self._check(reply_filter, port, first + done, count - done, arrived + done / self.rate)

    def _check(
        self,
        reply_filter: ReplyFilter,
        port: int,
        first: int,
        count: int,
        first_lands: float,
    ) -> None:
        """Charge the guesses [first, first+count) that land on `port` to the query there,
        and deliver the one that matches it, if any, when it lands (guess `first` lands at
        `first_lands`, the next ones 1/rate apart)."""
        server = getattr(reply_filter, "server", None)
        txid = getattr(reply_filter, "txid", None)
        if server is None or txid is None or port not in self.space.ports:
            return  # not a query this flood's guesses can reach
        hit_index = None
        target = self.space.target(server, port, txid)
        if target is not None:
            index = self.seq.index_of(target)
            if first <= index < first + count:
                hit_index = index
        p = self.space.ports.index(port)
        landed_here = 0
        wrong_source = 0
        ids = self.space.id_count
        for s, address in enumerate(self.space.servers):
            low = (s * len(self.space.ports) + p) * ids
            n = self.seq.count_in(first, count, low, low + ids)
            if address == server:
                landed_here += n
            else:
                wrong_source += n
        if hit_index is not None:
            landed_here -= 1
            lands = first_lands + (hit_index - first) / self.rate
            src, _, guessed_id = self.space.decode(self.seq.value(hit_index))
            wire = self.forge(src, port, guessed_id)
            delay = max(0.0, lands - self.net.loop.time())
            self.net.loop.call_later(delay, self.net.arrive, src, (self.host, port), wire)
            self.stats.hits += 1
        if landed_here:
            reply_filter.reject("wrong_id", landed_here)  # type: ignore[call-arg]
        if wrong_source:
            reply_filter.reject("wrong_source", wrong_source)  # type: ignore[call-arg]
        self.stats.charged += landed_here + wrong_source

    # -- per-packet mode ----------------------------------------------------------------

    def _send_packets(self, first: int, count: int) -> None:
        for j in range(first, first + count):
            server, port, txid = self.space.decode(self.seq.value(j))
            delay = (j - first) / self.rate
            self.net.loop.call_later(delay, self._send_one, server, port, txid)

    def _send_one(self, server: Address, port: int, txid: int) -> None:
        wire = self.forge(server, port, txid)
        self.net.inject(server, (self.host, port), wire, origin=self.origin)

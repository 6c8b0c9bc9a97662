"""Runs a resolution generator against authoritative engines in this process.

The resolver core yields `Exchange`s; here each one is answered by calling the engine
that owns the server address, with no sockets and a manual clock. A `tamper` hook lets a
test replace the reply (a hostile server or an attacker who won the race), or add
datagrams that arrive before the reply (forgeries), which go through the same
acceptance test the real network applies.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.name
import dns.rdatatype
import dns.rrset

from poisonproof.auth.engine import AuthEngine
from poisonproof.auth.zones import load_zones
from poisonproof.net.base import Address, ManualClock, Via
from poisonproof.resolver.defenses import Defenses
from poisonproof.resolver.hints import RootHints
from poisonproof.resolver.iterator import Answer, Exchange, ExchangeResult, Resolver, ResolverConfig
from poisonproof.resolver.outgoing import Entropy

Tamper = Callable[[Exchange, bytes | None], bytes | None]


class InProcessWorld:
    """Authoritative engines by address, and a log of every exchange the resolver made."""

    def __init__(self, clock: ManualClock | None = None) -> None:
        self.clock = clock or ManualClock()
        self.engines: dict[str, AuthEngine] = {}
        self.exchanges: list[Exchange] = []
        self.tamper: Tamper | None = None
        self.forgeries: Callable[[Exchange], list[tuple[bytes, Address]]] | None = None
        self.down: set[str] = set()
        self.rtt = 0.01

    def serve(self, address: str, zone_files: list[str | Path]) -> AuthEngine:
        engine = AuthEngine(load_zones([str(z) for z in zone_files]), self.clock)
        self.engines[address] = engine
        return engine

    def resolver(
        self,
        defenses: Defenses,
        root: str,
        seed: int = 1,
        config: ResolverConfig | None = None,
    ) -> Resolver:
        hints = RootHints(
            dns.rrset.from_text(".", 3_600_000, "IN", "NS", "a.root.test."),
            {dns.name.from_text("a.root.test."): [root]},
        )
        return Resolver(
            clock=self.clock,
            hints=hints,
            defenses=defenses,
            entropy=Entropy(random.Random(seed)),
            config=config or ResolverConfig(query_localhost=True),
        )

    def exchange(self, exchange: Exchange) -> ExchangeResult:
        self.exchanges.append(exchange)
        query = exchange.query
        address = query.server[0]
        self.clock.now += self.rtt
        if self.forgeries is not None and not exchange.tcp:
            for data, sender in self.forgeries(exchange):
                reason = query.check(data, sender)
                if reason is None:
                    return ExchangeResult(data, None, self.rtt)
                query.reject(reason)
        engine = self.engines.get(address)
        reply = None
        if engine is not None and address not in self.down:
            reply = engine.handle(
                query.wire, ("127.0.0.1", 40000), Via.TCP if exchange.tcp else Via.UDP
            )
        if self.tamper is not None:
            reply = self.tamper(exchange, reply)
        if reply is None:
            self.clock.now += exchange.timeout
            return ExchangeResult(None, "timeout", exchange.timeout)
        if not exchange.tcp:
            reason = query.check(reply, query.server)
            if reason is not None:
                query.reject(reason)
                self.clock.now += exchange.timeout
                return ExchangeResult(None, f"rejected: {reason}", exchange.timeout)
        return ExchangeResult(reply, None, self.rtt)

    def run(
        self, resolver: Resolver, name: str, rdtype: str = "A", trace: list | None = None
    ) -> Answer:
        generator = resolver.resolve(
            dns.name.from_text(name), dns.rdatatype.from_text(rdtype), trace
        )
        try:
            exchange = next(generator)
            while True:
                exchange = generator.send(self.exchange(exchange))
        except StopIteration as done:
            return done.value

    def questions(self) -> list[tuple[str, str, str]]:
        """(server, name as sent, type) of every exchange."""
        out = []
        for ex in self.exchanges:
            q = dns.message.from_wire(ex.query.wire)
            out.append(
                (
                    ex.query.server[0],
                    q.question[0].name.to_text(),
                    dns.rdatatype.to_text(q.question[0].rdtype),
                )
            )
        return out


def texts(answer: Answer) -> list[str]:
    return [line for rrset in answer.answer for line in rrset.to_text().splitlines()]

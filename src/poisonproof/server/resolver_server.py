"""The recursive resolver service: a `Frontend` and a `Resolver` on a `Network`.

Owns: listening on UDP and TCP, merging identical client questions in flight into one
resolution, driving resolutions with the `ExchangeDriver`, and answering in-flight
queries before stopping.
Must never: resolve (the resolver does) or parse queries (the frontend does).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Coroutine

from poisonproof.net.base import (
    DEFAULT_TCP_LIMITS,
    Address,
    MessageHandler,
    Network,
    Service,
    TcpLimits,
    Via,
)
from poisonproof.net.udp_batch import WithFastPath
from poisonproof.resolver.frontend import Frontend, Question
from poisonproof.resolver.iterator import Answer
from poisonproof.server.driver import ExchangeDriver
from poisonproof.server.listeners import describe, start_listeners
from poisonproof.server.systemd import serve_sockets

log = logging.getLogger("poisonproof.server")


class ResolverServer:
    def __init__(
        self,
        network: Network,
        frontend: Frontend,
        listen: list[Address],
        tcp_limits: TcpLimits = DEFAULT_TCP_LIMITS,
    ) -> None:
        self.network = network
        self.frontend = frontend
        self.resolver = frontend.resolver
        self.listen = list(listen)
        self.tcp_limits = tcp_limits
        self.driver = ExchangeDriver(network)
        self.services: list[Service] = []
        self._inflight: dict[tuple[object, ...], asyncio.Task[Answer]] = {}
        self.observe_latency: Callable[[float], None] | None = None
        """Called with the seconds each resolution that needed the network took (metrics)."""
        self.activated: list[socket.socket] = []
        """Sockets handed over by systemd (socket activation), served instead of `listen`."""

    @property
    def addresses(self) -> list[Address]:
        return [service.address for service in self.services[::2]]

    def handler(self) -> MessageHandler:
        """`handle`, with the frontend's batch cache-hit fast path for UDP listeners."""
        if self.frontend.answers is None:
            return self.handle
        return WithFastPath(self.handle, self.frontend.answer_now)

    def handle(
        self, wire: bytes, peer: Address, via: Via
    ) -> bytes | None | Coroutine[None, None, bytes | None]:
        """The reply now, or the coroutine that works it out: the network awaits it in
        the one task it makes per waiting reply (no second task per query here)."""
        outcome = self.frontend.receive(wire, peer, via)
        if not isinstance(outcome, Question):
            return outcome
        return self._answer(outcome, via)

    async def _answer(self, question: Question, via: Via) -> bytes | None:
        observe = self.observe_latency
        started = self.network.clock.monotonic() if observe is not None else 0.0
        answer = await self.resolve(question)
        reply = self.frontend.render(question.query, answer, via)
        answers = self.frontend.answers
        if answers is not None:
            # the reply leaves as soon as this returns; keeping a copy for the fast path
            # waits for the next turn of the loop (off the client's wait), and is skipped
            # if a reload cleared the stored replies in between
            asyncio.get_running_loop().call_soon(
                self.frontend.remember, question.wire, answer, reply, answers.generation
            )
        if observe is not None:
            observe(self.network.clock.monotonic() - started)
        return reply

    async def resolve(self, question: Question) -> Answer:
        merge = self.resolver.defenses.merge_duplicates
        task = self._inflight.get(question.key) if merge else None
        if task is None:
            task = asyncio.ensure_future(
                self.driver.run(self.resolver.resolve(question.qname, question.qtype))
            )
            if merge:
                self._inflight[question.key] = task
                task.add_done_callback(lambda _t, key=question.key: self._inflight.pop(key, None))
        return await asyncio.shield(task)

    async def start(self) -> None:
        if self.activated:
            self.services = await serve_sockets(
                self.network, self.activated, self.handle, self.tcp_limits
            )
        else:
            self.services = await start_listeners(
                self.network, self.listen, self.handler(), self.tcp_limits
            )
        where = describe(self.services)
        log.info(
            "ready: resolving on %s (udp+tcp), defenses: %s",
            where,
            self.resolver.defenses.describe(),
        )

    def abandon(self) -> None:
        """Cancel resolutions still running (a scenario or trial that is over)."""
        for task in list(self._inflight.values()):
            task.cancel()

    async def stop(self, quiet: bool = False) -> None:
        for service in self.services:
            await service.close()  # a UDP service first answers what is in flight
        self.services.clear()
        if not quiet:
            log.info("stopped after %d client queries", self.frontend.stats.get("queries", 0))

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
        self._inflight: dict[tuple[object, ...], asyncio.Future[Answer]] = {}
        """The answer each question being worked out will get (duplicates wait for it)."""
        self._working: set[asyncio.Task[object]] = set()
        """Tasks working out or waiting for an answer (what `abandon` cancels)."""
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
        """The answer to `question`, worked out in the asking task (no task of its own).

        With duplicates merged, an identical question already being worked out is waited
        for instead; if the task working it out is cancelled (its TCP client went away,
        say), the others work it out themselves rather than share the cancellation.
        """
        task = asyncio.current_task()
        assert task is not None
        self._working.add(task)
        try:
            if not self.resolver.defenses.merge_duplicates:
                return await self.driver.run(self.resolver.resolve(question.qname, question.qtype))
            return await self._merged(question, task)
        finally:
            self._working.discard(task)

    async def _merged(self, question: Question, task: asyncio.Task[object]) -> Answer:
        key = question.key
        while (shared := self._inflight.get(key)) is not None:
            try:
                return await asyncio.shield(shared)
            except asyncio.CancelledError:
                if not shared.cancelled() or task.cancelling():
                    raise  # this task is being cancelled, not the one it waited for
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            answer = await self.driver.run(self.resolver.resolve(question.qname, question.qtype))
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        finally:
            if self._inflight.get(key) is future:
                del self._inflight[key]
        future.set_result(answer)
        return answer

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
        """Cancel resolutions still running (a scenario or trial that is over): the
        tasks working them out and those waiting for them."""
        for task in list(self._working):
            task.cancel()

    async def stop(self, quiet: bool = False) -> None:
        for service in self.services:
            await service.close()  # a UDP service first answers what is in flight
        self.services.clear()
        if not quiet:
            log.info("stopped after %d client queries", self.frontend.stats.get("queries", 0))

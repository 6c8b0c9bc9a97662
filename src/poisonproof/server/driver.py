"""Drives resolver generators over a `Network`: the only place upstream packets leave.

Owns: performing each `Exchange` a resolution yields (UDP from the chosen source port
with the resolution's acceptance test, or TCP), measuring its RTT on the network's clock,
re-drawing a port that cannot be bound, merging identical outstanding exchanges so a
burst of the same question is one query on the wire (anti-birthday), and refusing any
upstream address outside what the resolver is configured to reach.
Must never: interpret DNS; the resolver decides, the driver carries.
"""

from __future__ import annotations

import asyncio
import errno
import logging

from poisonproof.net.base import ExchangeTimeout, Network
from poisonproof.resolver.iterator import Answer, Exchange, ExchangeResult, Resolution

log = logging.getLogger("poisonproof.driver")

BIND_RETRIES = 8


class ExchangeDriver:
    def __init__(self, network: Network) -> None:
        self.network = network
        self._outstanding: dict[tuple[object, ...], asyncio.Future[ExchangeResult]] = {}
        self.merged = 0
        self.sent = 0

    async def run(self, resolution: Resolution) -> Answer:
        """Run one resolution generator to its answer."""
        try:
            exchange = next(resolution)
            while True:
                result = await self.perform(exchange)
                exchange = resolution.send(result)
        except StopIteration as done:
            answer: Answer = done.value
            return answer

    async def perform(self, exchange: Exchange) -> ExchangeResult:
        key = exchange.merge_key
        if key is None:
            return await self._send(exchange)
        running = self._outstanding.get(key)
        if running is not None:
            self.merged += 1
            return await asyncio.shield(running)
        future: asyncio.Future[ExchangeResult] = asyncio.get_running_loop().create_future()
        self._outstanding[key] = future
        try:
            result = await self._send(exchange)
            future.set_result(result)
            return result
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" warning when nobody merged
            raise
        finally:
            del self._outstanding[key]

    async def _send(self, exchange: Exchange) -> ExchangeResult:
        query = exchange.query
        clock = self.network.clock
        started = clock.monotonic()
        self.sent += 1
        try:
            if exchange.tcp:
                wire = await self.network.tcp_exchange(
                    query.wire, query.server, timeout=exchange.timeout
                )
            else:
                wire = await self._udp(exchange)
        except ExchangeTimeout as timeout:
            return ExchangeResult(None, str(timeout), clock.monotonic() - started)
        except OSError as error:
            return ExchangeResult(None, f"{error.strerror or error}", clock.monotonic() - started)
        return ExchangeResult(wire, None, clock.monotonic() - started)

    async def _udp(self, exchange: Exchange) -> bytes:
        query = exchange.query
        source = exchange.source
        for _ in range(BIND_RETRIES):
            try:
                data, _sender = await self.network.udp_exchange(
                    query.wire,
                    query.server,
                    timeout=exchange.timeout,
                    source=source,
                    reply_filter=query,
                )
                return data
            except OSError as error:
                if source is None or error.errno not in (errno.EADDRINUSE, errno.EACCES):
                    raise
                source = (source[0], exchange.new_port())
        raise OSError(errno.EADDRINUSE, "no free source port in the pool")

"""The authoritative server: an `AuthEngine` served over UDP and TCP on one or more addresses.

Owns: starting listeners on a `Network`, reloading zones (a broken file keeps the old
zones serving), stopping cleanly, and the one-line log of each of those events; for labs,
holding every answer for a fixed delay (the race window, where the kernel has no netem)
and recording what each query looked like (source port, ID, name as sent, EDNS) for the
audit.
Must never: answer DNS itself (the engine does) or open sockets directly (the network does).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable
from typing import IO

import dns.flags
import dns.message

from poisonproof.auth.engine import AuthEngine
from poisonproof.auth.rrl import ResponseRateLimiter
from poisonproof.auth.zones import ZoneError, load_zones
from poisonproof.net.base import DEFAULT_TCP_LIMITS, Address, Network, Service, TcpLimits, Via
from poisonproof.server.listeners import describe, start_listeners
from poisonproof.wire.guard import QUERY_LABELS, within_budget

log = logging.getLogger("poisonproof.server")


class AuthServer:
    """Zones from files, answered on every listen address over UDP and TCP."""

    def __init__(
        self,
        network: Network,
        zone_specs: list[str],
        listen: list[Address],
        *,
        rrl: ResponseRateLimiter | None = None,
        tcp_limits: TcpLimits = DEFAULT_TCP_LIMITS,
        answer_delay: float = 0.0,
        query_log: IO[str] | None = None,
    ) -> None:
        if answer_delay < 0:
            raise ValueError(f"answer delay must be >= 0 seconds, got {answer_delay}")
        self.network = network
        self.answer_delay = answer_delay
        """Seconds each answer is held (a lab's race window without netem)."""
        self.query_log = query_log
        """One JSON object per query received (the audit reads it)."""
        self.zone_specs = list(zone_specs)
        self.listen = list(listen)
        self.tcp_limits = tcp_limits
        # Raises ZoneError before anything is bound: a broken zone refuses to start.
        self.engine = AuthEngine(load_zones(self.zone_specs), network.clock, rrl=rrl)
        self.services: list[Service] = []

    @property
    def addresses(self) -> list[Address]:
        """The bound addresses (ports resolved when 0 was asked), one per listen."""
        return [service.address for service in self.services[::2]]

    def handle(
        self, wire: bytes, peer: Address, via: Via
    ) -> bytes | None | Awaitable[bytes | None]:
        if self.query_log is not None:
            self._log_query(wire, peer, via)
        answer = self.engine.handle(wire, peer, via)
        if self.answer_delay <= 0 or answer is None:
            return answer
        return self._held(answer)

    async def _held(self, answer: bytes) -> bytes:
        await asyncio.sleep(self.answer_delay)
        return answer

    def _log_query(self, wire: bytes, peer: Address, via: Via) -> None:
        assert self.query_log is not None
        record: dict[str, object] = {
            "time": round(self.network.clock.wall(), 6),
            "source": peer[0],
            "port": peer[1],
            "via": via.value,
            "bytes": len(wire),
        }
        if not within_budget(wire, QUERY_LABELS):  # a compression bomb: logged unparsed
            record["error"] = "too costly to parse (compression pointers)"
            self.query_log.write(json.dumps(record) + "\n")
            self.query_log.flush()
            return
        try:
            message = dns.message.from_wire(wire)
        except Exception as error:  # a record of what came, never a reason to fail
            record["error"] = f"{type(error).__name__}: {error}"
        else:
            record["id"] = message.id
            if message.question:
                question = message.question[0]
                record["qname"] = question.name.to_text()  # with the case as sent
                record["qtype"] = int(question.rdtype)
            record["rd"] = bool(message.flags & dns.flags.RD)
            record["edns"] = message.edns
            record["payload"] = message.payload if message.edns >= 0 else None
            record["do"] = bool(message.ednsflags & dns.flags.DO)
            record["cookie"] = any(o.otype == 10 for o in message.options)
        self.query_log.write(json.dumps(record) + "\n")
        self.query_log.flush()

    async def start(self) -> None:
        self.services = await start_listeners(
            self.network, self.listen, self.handle, self.tcp_limits
        )
        zones = ", ".join(str(z.origin) for z in self.engine.zones)
        log.info("started: serving %s on %s (udp+tcp)", zones, describe(self.services))

    async def reload(self) -> bool:
        """Load the zone files again; on any error keep serving the old zones.

        Loading runs in a worker thread, so queries keep being answered (from the old
        zones) while big files are parsed; the new set replaces the old in one assignment.
        """
        loop = asyncio.get_running_loop()
        try:
            zones = await loop.run_in_executor(None, load_zones, self.zone_specs)
        except ZoneError as error:
            log.error("reload failed, still serving the previous zones: %s", error)
            return False
        self.engine.zones = zones
        log.info(
            "reloaded: %s",
            ", ".join(f"{z.origin} (serial {z.soa.serial if z.soa else '?'})" for z in zones),
        )
        return True

    async def stop(self, quiet: bool = False) -> None:
        for service in self.services:
            await service.close()
        self.services.clear()
        if not quiet:
            log.info("stopped after %d queries", self.engine.stats["queries"])

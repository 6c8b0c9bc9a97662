"""The authoritative server: an `AuthEngine` served over UDP and TCP on one or more addresses.

Owns: starting listeners on a `Network`, reloading zones (a broken file keeps the old
zones serving), stopping cleanly, and the one-line log of each of those events.
Must never: answer DNS itself (the engine does) or open sockets directly (the network does).
"""

from __future__ import annotations

import asyncio
import logging

from poisonproof.auth.engine import AuthEngine
from poisonproof.auth.rrl import ResponseRateLimiter
from poisonproof.auth.zones import ZoneError, load_zones
from poisonproof.net.base import DEFAULT_TCP_LIMITS, Address, Network, Service, TcpLimits
from poisonproof.server.listeners import describe, start_listeners

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
    ) -> None:
        self.network = network
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

    async def start(self) -> None:
        self.services = await start_listeners(
            self.network, self.listen, self.engine.handle, self.tcp_limits
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

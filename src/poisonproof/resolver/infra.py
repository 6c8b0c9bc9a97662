"""What the resolver has learned about upstream servers and zones.

Owns: smoothed RTT and retransmission timeouts per server address (with exponential
back-off after timeouts), lame/broken marks per (server, zone) with expiry, servers that
do not echo 0x20 case or do not speak EDNS, learned server cookies, and per-zone
unwanted-reply counters with the spoofing alarm (after which the zone is queried over
TCP for a while). Server choice: the fastest known servers, with some exploration.
Must never: read the system clock or do I/O; times come in as arguments.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

import dns.name

from poisonproof.net.base import Address

log = logging.getLogger("poisonproof.resolver")

INITIAL_TIMEOUT = 0.8
MIN_TIMEOUT = 0.2
MAX_TIMEOUT = 5.0
LAME_FOR = 900.0
ALARM_WINDOW = 60.0
ALARM_TCP_FOR = 600.0
BAND = 0.4
"""Servers within this many seconds of the fastest are chosen among at random (Unbound)."""
EXPLORE = 0.05


@dataclass
class ServerState:
    srtt: float | None = None
    rttvar: float = 0.0
    consecutive_timeouts: int = 0
    no_caps: bool = False
    no_edns: bool = False
    server_cookie: bytes | None = None
    lame_until: dict[dns.name.Name, float] = field(default_factory=dict)

    def timeout(self) -> float:
        base = INITIAL_TIMEOUT if self.srtt is None else self.srtt + 4 * self.rttvar + 0.02
        return max(MIN_TIMEOUT, min(MAX_TIMEOUT, base * (2**self.consecutive_timeouts)))


@dataclass
class ZoneAlarm:
    unwanted: int = 0
    window_start: float = 0.0
    tcp_until: float = 0.0
    alarms: int = 0


class Infrastructure:
    def __init__(self, rng: random.Random, unwanted_threshold: int = 0) -> None:
        self.rng = rng
        self.unwanted_threshold = unwanted_threshold
        self.servers: dict[Address, ServerState] = {}
        self.zones: dict[dns.name.Name, ZoneAlarm] = {}

    def state(self, server: Address) -> ServerState:
        state = self.servers.get(server)
        if state is None:
            state = self.servers[server] = ServerState()
        return state

    # -- RTT ----------------------------------------------------------------------------

    def record_rtt(self, server: Address, rtt: float) -> None:
        state = self.state(server)
        state.consecutive_timeouts = 0
        if state.srtt is None:
            state.srtt, state.rttvar = rtt, rtt / 2
        else:
            state.rttvar = 0.75 * state.rttvar + 0.25 * abs(state.srtt - rtt)
            state.srtt = 0.875 * state.srtt + 0.125 * rtt

    def record_timeout(self, server: Address) -> None:
        state = self.state(server)
        state.consecutive_timeouts = min(state.consecutive_timeouts + 1, 6)

    # -- lameness -----------------------------------------------------------------------

    def mark_lame(self, server: Address, zone: dns.name.Name, now: float) -> None:
        self.state(server).lame_until[zone] = now + LAME_FOR

    def is_lame(self, server: Address, zone: dns.name.Name, now: float) -> bool:
        until = self.state(server).lame_until.get(zone)
        return until is not None and until > now

    # -- choice -------------------------------------------------------------------------

    def choose(
        self, candidates: list[Address], zone: dns.name.Name, now: float, tried: set[Address]
    ) -> Address | None:
        """The next server to ask for `zone`: fast ones first, unknown ones explored."""
        usable = [a for a in candidates if a not in tried and not self.is_lame(a, zone, now)]
        if not usable:
            return None
        if self.rng.random() < EXPLORE:
            return self.rng.choice(usable)
        expected = {a: self._expected(a) for a in usable}
        best = min(expected.values())
        band = [a for a in usable if expected[a] <= best + BAND]
        return self.rng.choice(band)

    def _expected(self, server: Address) -> float:
        state = self.state(server)
        if state.srtt is None:
            return 0.0  # unknown servers are worth trying: that is how we learn their RTT
        return state.srtt * (2**state.consecutive_timeouts)

    # -- spoofing alarm -----------------------------------------------------------------

    def count_unwanted(self, zone: dns.name.Name, count: int, now: float) -> bool:
        """Add unwanted replies seen for `zone`; True when this raises the alarm."""
        if count <= 0 or self.unwanted_threshold <= 0:
            return False
        alarm = self.zones.setdefault(zone, ZoneAlarm(window_start=now))
        if now - alarm.window_start > ALARM_WINDOW:
            alarm.unwanted, alarm.window_start = 0, now
        alarm.unwanted += count
        if alarm.unwanted >= self.unwanted_threshold and alarm.tcp_until <= now:
            alarm.tcp_until = now + ALARM_TCP_FOR
            alarm.alarms += 1
            log.warning(
                "spoofing alarm: %d unwanted replies for %s in %.0fs; using TCP for %.0fs",
                alarm.unwanted,
                zone,
                now - alarm.window_start,
                ALARM_TCP_FOR,
            )
            return True
        return False

    def tcp_only(self, zone: dns.name.Name, now: float) -> bool:
        alarm = self.zones.get(zone)
        return alarm is not None and alarm.tcp_until > now

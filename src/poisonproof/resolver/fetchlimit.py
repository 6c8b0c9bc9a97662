"""The per-zone fetch limit: how fast the resolver may query the servers of any one zone.

A random-subdomain ("water torture") flood asks for names no cache can hold
(`<random>.victim.example`), so every client query becomes an upstream query to the
victim zone's servers: the resolver would relay the whole flood at them. This limit is
Unbound's `ratelimit` (also BIND's `fetches-per-zone` in spirit): each zone has a bucket of
`rate` upstream queries per second with a burst of `burst`; a query that finds its zone's
bucket empty is not sent, and the client gets SERVFAIL (Extended DNS Error 0, "fetch
limit"). Cached answers and other zones are unaffected.

Switch: `ResolverConfig.zone_fetch_rate` (queries per second per zone; 0 turns the limit
off) and `ResolverConfig.zone_fetch_burst` (0 means one second's worth).

Owns: the token buckets, keyed by zone, at most `max_zones` of them (least recently used
forgotten), and the count of queries it held back.
Must never: read the system clock (time comes in as an argument), send or drop packets
itself, or limit anything but upstream queries.
"""

from __future__ import annotations

from collections import OrderedDict

import dns.name

MAX_ZONES = 10_000


class ZoneFetchLimiter:
    """Token buckets of upstream queries, one per zone."""

    def __init__(self, rate: float, burst: float = 0.0, max_zones: int = MAX_ZONES) -> None:
        if rate < 0 or burst < 0:
            raise ValueError("the zone fetch rate and burst must be >= 0")
        self.rate = rate
        self.burst = burst or rate
        self.max_zones = max_zones
        self.limited = 0
        """Upstream queries held back since the start."""
        self._buckets: OrderedDict[dns.name.Name, tuple[float, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def allow(self, zone: dns.name.Name, now: float) -> bool:
        """Take one query's credit from `zone`'s bucket at time `now`; False if empty."""
        if not self.enabled:
            return True
        tokens, updated = self._buckets.pop(zone, (self.burst, now))
        tokens = min(self.burst, tokens + (now - updated) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        else:
            self.limited += 1
        self._buckets[zone] = (tokens, now)
        while len(self._buckets) > self.max_zones:
            self._buckets.popitem(last=False)
        return allowed

    def __len__(self) -> int:
        return len(self._buckets)

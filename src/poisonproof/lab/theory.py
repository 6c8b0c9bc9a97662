"""RFC 5452 §7: how likely a spoofing attempt is, and how long poisoning should take.

Owns: P_s = D·R·W / (N·P·I) (one race window), P_cs = 1 − (1 − P_s)^(T/TTL) (over time T;
a Kaminsky attacker is not held back by a TTL, so its effective TTL is the window), and
the median number of attempts and time to poison they imply, plus the extra factor 0x20
adds (2^letters, not part of the RFC's formula).
Must never: simulate anything; it is the yardstick the measurements are held against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ID_SPACE = 65536


@dataclass(frozen=True)
class Attempt:
    """The numbers of one race window, in RFC 5452's letters."""

    rate: float
    """R: forged replies per second the attacker lands at the resolver."""
    window: float
    """W: seconds the real query is outstanding (the race window)."""
    servers: int = 1
    """N: authoritative servers the resolver may ask (the attacker must guess which)."""
    ports: int = 1
    """P: source ports the resolver may use."""
    ids: int = ID_SPACE
    """I: transaction IDs the resolver may use."""
    identical: int = 1
    """D: identical outstanding queries (birthday attack; 1 when queries are merged)."""
    case_bits: int = 0
    """Letters randomized by 0x20 (each halves the odds); 0 when 0x20 is off."""

    @property
    def guesses(self) -> float:
        return self.rate * self.window

    @property
    def space(self) -> float:
        return self.servers * self.ports * self.ids * (2.0**self.case_bits)

    @property
    def p_success(self) -> float:
        """P_s of one window (capped at 1: the attacker cannot guess more than everything)."""
        return min(1.0, self.identical * self.guesses / self.space)


def p_cumulative(p_s: float, duration: float, ttl: float) -> float:
    """P_cs = 1 − (1 − P_s)^(T/TTL)."""
    if p_s >= 1.0:
        return 1.0
    return 1.0 - (1.0 - p_s) ** (duration / ttl)


def median_attempts(p_s: float) -> float:
    """Attempts by which half of all attackers have succeeded (geometric distribution)."""
    if p_s >= 1.0:
        return 1.0
    if p_s <= 0.0:
        return math.inf
    return math.ceil(math.log(0.5) / math.log1p(-p_s))


def median_time(p_s: float, seconds_per_attempt: float) -> float:
    return median_attempts(p_s) * seconds_per_attempt

"""Server knowledge: RTT-based choice with exploration, back-off, lameness."""

from __future__ import annotations

import random
from collections import Counter

import dns.name

from poisonproof.resolver.infra import Infrastructure

ZONE = dns.name.from_text("x.")
FAST, SLOW, NEW = ("192.0.2.1", 53), ("192.0.2.2", 53), ("192.0.2.3", 53)


def test_fast_servers_are_preferred_and_slow_ones_still_explored():
    infra = Infrastructure(random.Random(4))
    for _ in range(5):
        infra.record_rtt(FAST, 0.010)
        infra.record_rtt(SLOW, 0.900)
    picks = Counter(infra.choose([FAST, SLOW], ZONE, 0.0, set()) for _ in range(2000))
    assert picks[FAST] > 1800 and 0 < picks[SLOW] < 200  # exploration keeps learning


def test_unknown_servers_are_tried_first():
    infra = Infrastructure(random.Random(4))
    infra.record_rtt(FAST, 0.010)
    picks = Counter(infra.choose([FAST, NEW], ZONE, 0.0, set()) for _ in range(200))
    assert picks[NEW] > picks[FAST]


def test_timeouts_back_off_exponentially_and_reset_on_reply():
    infra = Infrastructure(random.Random(4))
    infra.record_rtt(FAST, 0.300)
    base = infra.state(FAST).timeout()
    infra.record_timeout(FAST)
    infra.record_timeout(FAST)
    assert abs(infra.state(FAST).timeout() - 4 * base) < 1e-9
    infra.record_rtt(FAST, 0.300)
    assert infra.state(FAST).timeout() < 2 * base


def test_lame_servers_are_skipped_until_the_mark_expires():
    infra = Infrastructure(random.Random(4))
    infra.mark_lame(FAST, ZONE, now=100.0)
    assert infra.choose([FAST], ZONE, 101.0, set()) is None
    assert infra.choose([FAST], dns.name.from_text("y."), 101.0, set()) == FAST
    assert infra.choose([FAST], ZONE, 100.0 + 901, set()) == FAST

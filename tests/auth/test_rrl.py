"""Response rate limiting: per client /24 and response class, with slip."""

from __future__ import annotations

from pathlib import Path

import dns.flags
import dns.message

from poisonproof.auth.engine import AuthEngine
from poisonproof.auth.rrl import ResponseRateLimiter, RrlConfig, Verdict
from poisonproof.auth.zones import load_zones
from poisonproof.net.base import ManualClock, Via


def test_limits_per_network_and_refills_over_time():
    rrl = ResponseRateLimiter(RrlConfig(responses_per_second=5, window=2, slip=0))
    key = ("answer", "www", 1)
    verdicts = [rrl.decide("198.51.100.7", key, 0.0) for _ in range(20)]
    assert verdicts.count(Verdict.SEND) == 5
    # another host in the same /24 shares the account; another /24 does not
    assert rrl.decide("198.51.100.200", key, 0.0) is Verdict.DROP
    assert rrl.decide("198.51.101.1", key, 0.0) is Verdict.SEND
    # the debt is capped at window*rate, so after window+1 seconds credit is back
    assert rrl.decide("198.51.100.7", key, 3.0) is Verdict.SEND


def test_slip_sends_every_nth_limited_reply_truncated(zone_dir: Path):
    clock = ManualClock(1000.0)
    rrl = ResponseRateLimiter(RrlConfig(responses_per_second=2, window=5, slip=2))
    engine = AuthEngine(load_zones([str(zone_dir / "bank.example.zone")]), clock, rrl=rrl)
    query = dns.message.make_query("www.bank.example.", "A").to_wire()
    replies = [engine.handle(query, ("203.0.113.9", 5353), Via.UDP) for _ in range(12)]
    full = [r for r in replies if r is not None and dns.message.from_wire(r).answer]
    slipped = [
        r for r in replies if r is not None and dns.message.from_wire(r).flags & dns.flags.TC
    ]
    assert len(full) == 2
    assert len(slipped) == 5 and replies.count(None) == 5
    # TCP is never rate limited
    assert dns.message.from_wire(engine.handle(query, ("203.0.113.9", 1), Via.TCP)).answer
    clock.now += 10
    assert dns.message.from_wire(engine.handle(query, ("203.0.113.9", 5353), Via.UDP)).answer

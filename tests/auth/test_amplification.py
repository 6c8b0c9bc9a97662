"""Amplification: a flood of queries spoofed from a victim's address, at the authoritative
engine with RRL on, sends the victim a bounded trickle (fewer bytes than the attacker
sent); with RRL off the same flood is amplified (so the test can tell the difference)."""

from __future__ import annotations

import dns.flags
import dns.message

from poisonproof.auth.engine import AuthEngine
from poisonproof.auth.rrl import ResponseRateLimiter, RrlConfig
from poisonproof.auth.zones import load_zones
from poisonproof.demo import ZONE_DIR
from poisonproof.net.base import Via
from tests.resolver.inprocess import ManualClock

VICTIM = ("198.51.100.25", 4444)
RATE = 200  # spoofed queries per second
SECONDS = 20
CONFIG = RrlConfig(responses_per_second=5, window=15, slip=2)


def flood(rrl: ResponseRateLimiter | None) -> tuple[int, int, int, int]:
    """(queries, bytes sent by the attacker, replies and bytes that reached the victim)."""
    clock = ManualClock(5000.0)
    engine = AuthEngine(load_zones([str(ZONE_DIR / "bank.example.zone")]), clock, rrl=rrl)
    queries = [
        dns.message.make_query(name, rdtype, use_edns=0, payload=4096).to_wire()
        for name, rdtype in [("bank.example", "ANY"), ("big.bank.example", "TXT")]
    ]
    sent = sent_bytes = got = got_bytes = 0
    for tick in range(RATE * SECONDS):
        clock.now = 5000.0 + tick / RATE
        query = queries[tick % len(queries)]
        reply = engine.handle(query, VICTIM, Via.UDP)
        sent, sent_bytes = sent + 1, sent_bytes + len(query)
        if reply is not None:
            got, got_bytes = got + 1, got_bytes + len(reply)
    return sent, sent_bytes, got, got_bytes


def test_rrl_caps_what_a_spoofed_flood_sends_the_victim():
    sent, sent_bytes, got, got_bytes = flood(ResponseRateLimiter(CONFIG))
    # two response classes, each: its burst of credit plus the rate, and one in `slip` slips
    full_per_class = CONFIG.responses_per_second * SECONDS + CONFIG.responses_per_second
    assert got <= sent // CONFIG.slip + 2 * full_per_class
    assert got_bytes < sent_bytes  # no amplification: the victim gets less than was sent
    unlimited = flood(None)
    assert unlimited[2] == sent and unlimited[3] > 5 * sent_bytes  # without RRL: amplified


def test_slipped_replies_are_tiny_and_truncated():
    clock = ManualClock()
    engine = AuthEngine(
        load_zones([str(ZONE_DIR / "bank.example.zone")]),
        clock,
        rrl=ResponseRateLimiter(RrlConfig(responses_per_second=1, window=1, slip=1)),
    )
    query = dns.message.make_query("big.bank.example", "TXT", use_edns=0, payload=4096)
    wire = query.to_wire()
    replies = [engine.handle(wire, VICTIM, Via.UDP) for _ in range(50)]
    assert dns.message.from_wire(replies[0]).answer  # the one credit: a full answer
    slips = [r for r in replies[1:] if r is not None]
    assert len(slips) == 49  # slip=1: every limited reply is a slip, none dropped
    for reply in slips:
        message = dns.message.from_wire(reply)
        assert message.flags & dns.flags.TC and not message.answer
        assert len(reply) <= len(wire)  # a slip is never bigger than the query
    assert engine.stats["rrl_slipped"] == 49

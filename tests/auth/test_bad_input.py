"""Bad input, as properties: any bytes into the authoritative engine give a reply that
dnspython parses (same ID, QR set) or nothing, never an exception or an internal error."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonproof.auth.engine import AuthEngine
from poisonproof.auth.rrl import ResponseRateLimiter, RrlConfig
from poisonproof.auth.zones import load_zones
from poisonproof.demo import ZONE_DIR
from poisonproof.net.base import Via
from tests.resolver.inprocess import ManualClock

ENGINE = AuthEngine(
    load_zones([str(ZONE_DIR / "root.zone"), str(ZONE_DIR / "bank.example.zone")]),
    ManualClock(),
)
RRL_ENGINE = AuthEngine(
    load_zones([str(ZONE_DIR / "bank.example.zone")]),
    ManualClock(),
    rrl=ResponseRateLimiter(RrlConfig(responses_per_second=5)),
)
QUERIES = [
    dns.message.make_query(name, rdtype, use_edns=edns, want_dnssec=do).to_wire()
    for name, rdtype, edns, do in [
        ("www.bank.example", "A", None, False),
        ("big.bank.example", "TXT", None, False),
        ("portal.bank.example", "A", 0, True),
        ("x.cdn.bank.example", "AAAA", 0, False),
        ("nope.bank.example", "MX", 0, True),
        ("bank.example", "ANY", None, False),
    ]
]


def check(engine: AuthEngine, wire: bytes, via: Via) -> None:
    reply = engine.handle(wire, ("192.0.2.1", 4000), via)
    assert engine.stats["servfail_internal"] == 0
    if reply is None:
        return
    message = dns.message.from_wire(reply)
    assert message.flags & dns.flags.QR and reply[:2] == wire[:2]
    if via is Via.UDP and message.rcode() != dns.rcode.FORMERR:
        assert len(reply) <= max(512, ENGINE.max_udp_payload)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(st.binary(max_size=700), st.sampled_from(Via))
def test_any_bytes_give_a_parsable_reply_or_nothing(data, via):
    check(ENGINE, data, via)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(
    st.sampled_from(QUERIES),
    st.lists(st.tuples(st.integers(0, 599), st.integers(0, 255)), max_size=6),
    st.integers(0, 600),
    st.sampled_from(Via),
    st.booleans(),
)
def test_mutated_queries_give_a_parsable_reply_or_nothing(base, edits, cut, via, rrl):
    packet = bytearray(base)
    for at, value in edits:
        packet[at % len(packet)] = value
    check(RRL_ENGINE if rrl else ENGINE, bytes(packet[: max(cut, 12)]), via)

"""Bad input, as properties: any bytes into the resolver's frontend give a well-formed reply
or nothing, and any reply a server sends leaves nothing outside its bailiwick in the cache.
"""

from __future__ import annotations

import random

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from poisonproof.net.base import Via
from poisonproof.resolver.cache import Cache, Rank
from poisonproof.resolver.defenses import DEFAULT
from poisonproof.resolver.frontend import Frontend, Question
from poisonproof.resolver.hints import RootHints
from poisonproof.resolver.iterator import Answer, Resolver, ResolverConfig
from poisonproof.resolver.outgoing import Entropy
from poisonproof.resolver.scrubber import ReplyKind, scrub
from tests.resolver.conftest import ZONES
from tests.resolver.inprocess import InProcessWorld, ManualClock

ALLOWED = ("127.0.0.1", 5300)
STRANGER = ("198.51.100.7", 5300)


def make_frontend() -> Frontend:
    clock = ManualClock()
    resolver = Resolver(
        clock=clock,
        hints=RootHints(
            dns.rrset.from_text(".", 3_600_000, "IN", "NS", "a.root.test."),
            {dns.name.from_text("a.root.test."): ["10.0.0.1"]},
        ),
        defenses=DEFAULT,
        entropy=Entropy(random.Random(1)),
        config=ResolverConfig(query_localhost=True),
    )
    for text in (
        "www.example. 300 IN A 192.0.2.80",
        "alias.example. 300 IN CNAME www.example.",
        "loop1.example. 300 IN CNAME loop2.example.",
        "loop2.example. 300 IN CNAME loop1.example.",
    ):
        name, ttl, rdclass, rdtype, rdata = text.split(" ")
        resolver.cache.put(
            dns.rrset.from_text(name, int(ttl), rdclass, rdtype, rdata), Rank.ANSWER_AUTH
        )
    return Frontend(resolver)


FRONTEND = make_frontend()
QUERIES = [
    dns.message.make_query(name, rdtype, use_edns=edns).to_wire()
    for name, rdtype, edns in [
        ("www.example", "A", None),
        ("alias.example", "A", 0),
        ("loop1.example", "A", 0),
        ("new.example", "AAAA", None),
    ]
]


def check(wire: bytes, peer, via: Via) -> None:
    outcome = FRONTEND.receive(wire, peer, via)
    if outcome is None:
        return
    if isinstance(outcome, Question):
        assert peer == ALLOWED  # a stranger's question never reaches the resolver
        outcome = FRONTEND.render(outcome.query, Answer(dns.rcode.SERVFAIL), via)
    reply = dns.message.from_wire(outcome)  # well-formed: dnspython parses it
    assert reply.flags & dns.flags.QR and outcome[:2] == wire[:2]
    if peer == STRANGER and reply.rcode() != dns.rcode.FORMERR:
        assert reply.rcode() == dns.rcode.REFUSED and not reply.answer


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.binary(max_size=600), st.sampled_from([ALLOWED, STRANGER]), st.sampled_from(Via))
def test_any_bytes_into_the_frontend_give_a_reply_or_nothing(data, peer, via):
    check(data, peer, via)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    st.sampled_from(QUERIES),
    st.lists(st.tuples(st.integers(0, 599), st.integers(0, 255)), max_size=6),
    st.integers(0, 600),
    st.sampled_from([ALLOWED, STRANGER]),
    st.sampled_from(Via),
)
def test_mutated_queries_into_the_frontend_give_a_reply_or_nothing(base, edits, cut, peer, via):
    packet = bytearray(base)
    for at, value in edits:
        packet[at % len(packet)] = value
    check(bytes(packet[: max(cut, 12)]), peer, via)


# -- the scrubber and the cache -------------------------------------------------------------

ZONE = dns.name.from_text("victim.test.")
NAMES = [
    "victim.test.",
    "www.victim.test.",
    "ns1.victim.test.",
    "sub.victim.test.",
    "ns.sub.victim.test.",
    "x.victim.test.",
    "test.",
    "ns.evil.test.",
    "www.bank.example.",
    ".",
    "victim.test.evil.",
]
TYPES = ["A", "AAAA", "NS", "CNAME", "DNAME", "SOA", "MX", "TXT"]


def rdata_for(rdtype: str, draw_name: str) -> str:
    return {
        "A": "192.0.2.66",
        "AAAA": "2001:db8::66",
        "NS": draw_name,
        "CNAME": draw_name,
        "DNAME": draw_name,
        "SOA": f"{draw_name} h. 1 2 3 4 60",
        "MX": f"10 {draw_name}",
        "TXT": '"x"',
    }[rdtype]


records = st.builds(
    lambda owner, rdtype, target: dns.rrset.from_text(
        owner, 300, "IN", rdtype, rdata_for(rdtype, target)
    ),
    st.sampled_from(NAMES),
    st.sampled_from(TYPES),
    st.sampled_from(NAMES),
)


@st.composite
def replies(draw) -> tuple[dns.message.Message, dns.name.Name, int]:
    qname = dns.name.from_text(draw(st.sampled_from(NAMES[:6] + ["a.b.x.victim.test."])))
    qtype = dns.rdatatype.from_text(draw(st.sampled_from(TYPES[:5])))
    query = dns.message.make_query(qname, qtype)
    reply = dns.message.make_response(query)
    if draw(st.booleans()):
        reply.flags |= dns.flags.AA
    reply.set_rcode(draw(st.sampled_from([dns.rcode.NOERROR, dns.rcode.NXDOMAIN])))
    reply.answer = draw(st.lists(records, max_size=4))
    reply.authority = draw(st.lists(records, max_size=3))
    reply.additional = draw(st.lists(records, max_size=3))
    # through the wire and back, as the resolver sees it
    return dns.message.from_wire(reply.to_wire()), qname, qtype


def in_bailiwick(name: dns.name.Name) -> bool:
    return name.is_subdomain(ZONE)


@settings(
    max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(replies())
@example(  # the regression below: a CNAME out of the zone, then NXDOMAIN without SOA
    (
        dns.message.from_text(
            "id 1\nopcode QUERY\nrcode NXDOMAIN\nflags QR AA\n;QUESTION\nx.victim.test. IN A\n"
            ";ANSWER\nx.victim.test. 300 IN CNAME www.bank.example.\n"
        ),
        dns.name.from_text("x.victim.test."),
        dns.rdatatype.A,
    )
)
def test_any_reply_leaves_nothing_outside_the_bailiwick_in_the_cache(drawn):
    reply, qname, qtype = drawn
    clock = ManualClock()
    resolver = Resolver(
        clock=clock,
        hints=RootHints(dns.rrset.from_text(".", 1, "IN", "NS", "a.root.test."), {}),
        defenses=DEFAULT,
        entropy=Entropy(random.Random(1)),
        cache=Cache(clock),
    )
    scrubbed = scrub(reply, qname, qtype, ZONE)
    resolver._store(scrubbed, qname, qtype)
    for (name, _type), _entry in resolver.cache.export():
        assert in_bailiwick(name), f"{name} cached from a server for {ZONE} ({scrubbed.kind})"
    if scrubbed.kind in (ReplyKind.NXDOMAIN, ReplyKind.NODATA):
        assert in_bailiwick(scrubbed.final_name)


def rrset_from(line: str) -> dns.rrset.RRset:
    name, ttl, rdclass, rdtype, rdata = line.split(" ", 4)
    return dns.rrset.from_text(name, int(ttl), rdclass, rdtype, rdata)


@pytest.mark.parametrize(
    ("rcode", "authority"),
    [
        (dns.rcode.NXDOMAIN, []),
        (dns.rcode.NOERROR, ["victim.test. 60 IN SOA ns1.victim.test. h. 1 2 3 4 60"]),
        (dns.rcode.NXDOMAIN, ["example. 60 IN SOA ns.example. h. 1 2 3 4 60"]),
    ],
)
def test_a_denial_after_a_cname_out_of_the_zone_is_not_cached_for_the_target(rcode, authority):
    """Regression (found by the property above): a server for victim.test answering a
    CNAME to www.bank.example with NXDOMAIN and no SOA (or NODATA with its own SOA) made
    the resolver cache a denial of www.bank.example for 5 s: it now restarts there."""
    query = dns.message.make_query("x.victim.test.", "A")
    reply = dns.message.make_response(query)
    reply.flags |= dns.flags.AA
    reply.set_rcode(rcode)
    reply.answer = [dns.rrset.from_text("x.victim.test.", 300, "IN", "CNAME", "www.bank.example.")]
    reply.authority = [rrset_from(line) for line in authority]
    qname = dns.name.from_text("x.victim.test.")
    scrubbed = scrub(reply, qname, dns.rdatatype.A, ZONE)
    assert scrubbed.kind is ReplyKind.CNAME
    assert scrubbed.final_name == dns.name.from_text("www.bank.example.")
    clock = ManualClock()
    resolver = Resolver(
        clock=clock,
        hints=RootHints(dns.rrset.from_text(".", 1, "IN", "NS", "a.root.test."), {}),
        defenses=DEFAULT,
        entropy=Entropy(random.Random(1)),
    )
    resolver._store(scrubbed, qname, dns.rdatatype.A)
    bank = dns.name.from_text("www.bank.example.")
    assert resolver.cache.get_negative(bank, dns.rdatatype.A) is None
    assert [name for (name, _), _ in resolver.cache.export()] == [qname]


# -- end to end: a hostile server for victim.test, through the whole resolver --------------------

HONEST = InProcessWorld()
for _address, _file in [("10.0.0.1", "root.zone"), ("10.0.0.2", "test.zone")]:
    HONEST.serve(_address, [ZONES / _file])


def honest_data(name: dns.name.Name, rdtype: int) -> set[str] | None:
    """What the honest root and test. servers hold at (name, rdtype), as rdata texts."""
    for engine in HONEST.engines.values():
        served = engine.zones.find(name)
        if served is None:
            continue
        rdataset = served.zone.get_rdataset(name, rdtype)
        if rdataset is not None:
            return {r.to_text() for r in rdataset}
    return None


def honest_denial(name: dns.name.Name, rdtype: int | None) -> bool:
    """The honest root and test. servers deny (name, rdtype) (None: the name exists not)."""
    for engine in HONEST.engines.values():
        served = engine.zones.find(name)
        if served is not None and served.zone.get_node(name) is None:
            return True
        if served is not None and rdtype is not None:
            return served.zone.get_rdataset(name, rdtype) is None
    return False


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.lists(replies(), min_size=1, max_size=4), st.sampled_from(["www", "x.y", "sub"]))
def test_a_hostile_server_can_only_spoil_its_own_zone(script, label):
    """Whatever victim.test's server says (each query gets the next scripted reply, its ID
    and question patched in), every cached record outside victim.test is what the honest
    root and test. servers serve."""
    world = InProcessWorld()
    world.engines = dict(HONEST.engines)
    world.serve("10.0.0.3", [ZONES / "victim.zone"])
    replies_left = list(script)

    def hostile(exchange, reply):
        if exchange.query.server[0] != "10.0.0.3" or not replies_left:
            return reply
        forged, _, _ = replies_left.pop(0)
        sent = dns.message.from_wire(exchange.query.wire)
        forged.id = sent.id
        forged.question = sent.question
        return forged.to_wire()

    world.tamper = hostile
    resolver = world.resolver(DEFAULT, "10.0.0.1")
    world.run(resolver, f"{label}.victim.test")
    for (name, rdtype), entry in resolver.cache.export():
        if in_bailiwick(name):
            continue
        rrset = getattr(entry, "rrset", None)
        if rrset is None:  # a denial: the honest servers must deny it too
            assert honest_denial(name, None if rdtype < 0 else rdtype), f"denial of {name}"
            continue
        rdtype = rdtype % (1 << 17)  # glue and child-NS copies live in their own key space
        honest = honest_data(name, rdtype)
        assert honest is not None and {r.to_text() for r in rrset} <= honest, rrset

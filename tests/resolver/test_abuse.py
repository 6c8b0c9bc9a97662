"""Abuse that costs a resolver work, each bounded in upstream queries and time: NXNSAttack
(a referral to 100 glueless name servers), NRDelegation (100 name servers that never
answer), CNAME and NS loops, a 64k-label compression bomb (as a client query, as an
upstream reply, at the authoritative engine), the per-zone fetch limit, and the ACL
that keeps the resolver from being open by default.

Runs on `InProcessWorld` (engines called in-process, a manual clock): counts are exact
and the same on every run."""

from __future__ import annotations

import random
import struct
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from poisonproof.auth.engine import AuthEngine
from poisonproof.auth.zones import load_zones
from poisonproof.net.base import Via
from poisonproof.resolver.defenses import DEFAULT
from poisonproof.resolver.fetchlimit import ZoneFetchLimiter
from poisonproof.resolver.frontend import Frontend
from poisonproof.resolver.iterator import ResolverConfig
from poisonproof.server.settings import Settings
from poisonproof.wire.guard import QUERY_LABELS, REPLY_LABELS, within_budget
from tests.resolver.inprocess import InProcessWorld, ManualClock

NS_NAMES = 100
CONFIG = ResolverConfig(query_localhost=True)


def zone_text(origin: str, body: str, ttl: int = 300) -> str:
    return (
        f"$ORIGIN {origin}\n$TTL {ttl}\n@ SOA ns h 1 3600 900 1209600 60\n@ NS ns\n"
        f"ns A {{ns}}\n{body}"
    )


@pytest.fixture
def abuse(tmp_path: Path) -> InProcessWorld:
    nxns = "".join(f"nxns NS ns{i}.nowhere.evil.test.\n" for i in range(NS_NAMES))
    nrdeleg = "".join(
        f"nrdeleg NS ns{i}.nrdeleg\nns{i}.nrdeleg A 10.9.{i}.1\n" for i in range(NS_NAMES)
    )
    files = {
        "root.zone": (
            "$ORIGIN .\n$TTL 86400\n@ SOA a.root.test. h. 1 2 3 4 86400\n@ NS a.root.test.\n"
            "test. NS ns.tld.test.\nns.tld.test. A 10.0.0.2\na.root.test. A 10.0.0.1\n"
        ),
        "test.zone": zone_text(
            "test.",
            nxns
            + nrdeleg
            + "evil NS ns.evil\nns.evil A 10.0.0.66\nvictim NS ns.victim\nns.victim A 10.0.0.3\n"
            "loop1 NS ns.loop2.test.\nloop2 NS ns.loop3.test.\nloop3 NS ns.loop1.test.\n",
        ).replace("{ns}", "10.0.0.2"),
        "evil.zone": zone_text("evil.test.", "b CNAME a.victim.test.\n").replace(
            "{ns}", "10.0.0.66"
        ),
        "victim.zone": zone_text(
            "victim.test.",
            "a CNAME b.evil.test.\n"
            + "".join(f"c{i} CNAME c{i + 1}\n" for i in range(200))
            + "c200 A 192.0.2.200\nwww A 192.0.2.80\n"
            + "".join(f"d{i} CNAME d{i + 1}\n" for i in range(30))
            + "d30 A 192.0.2.30\n",
        ).replace("{ns}", "10.0.0.3"),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    world = InProcessWorld()
    world.serve("10.0.0.1", [tmp_path / "root.zone"])
    world.serve("10.0.0.2", [tmp_path / "test.zone"])
    world.serve("10.0.0.3", [tmp_path / "victim.zone"])
    world.serve("10.0.0.66", [tmp_path / "evil.zone"])
    return world


def run_timed(world: InProcessWorld, resolver, name: str, rdtype: str = "A"):
    """(answer, upstream exchanges, virtual seconds) for one client question."""
    before, started = len(world.exchanges), world.clock.now
    answer = world.run(resolver, name, rdtype)
    return answer, len(world.exchanges) - before, world.clock.now - started


def test_nxns_referral_to_100_glueless_names(abuse):
    resolver = abuse.resolver(DEFAULT, "10.0.0.1", config=CONFIG)
    abuse.run(resolver, "www.victim.test")  # warm: root and test. are cached
    costs = []
    for i in range(20):
        answer, exchanges, seconds = run_timed(abuse, resolver, f"x{i}.nxns.test")
        assert answer.rcode == dns.rcode.SERVFAIL
        assert seconds <= CONFIG.time_budget
        costs.append(exchanges)
    asked = {
        n.lower() for _, n, _ in abuse.questions() if n.lower().endswith(".nowhere.evil.test.")
    }
    # the first query resolves at most 4 of the 100 names (A and AAAA, minimised through
    # evil.test); later ones find the names' NXDOMAIN (RFC 8020) in the cache
    assert len(asked) <= CONFIG.max_ns_names_per_referral
    assert costs[0] <= 2 + 2 * CONFIG.max_ns_names_per_referral * 2
    assert max(costs[1:]) <= 2
    assert sum(costs) <= costs[0] + 2 * 19
    assert resolver.stats["ns_lookup_limit"] >= 1
    assert not any(s.startswith("10.9.") for s, _, _ in abuse.questions())


def test_nrdelegation_100_servers_that_never_answer(abuse):
    for i in range(NS_NAMES):
        abuse.down.add(f"10.9.{i}.1")
    resolver = abuse.resolver(DEFAULT, "10.0.0.1", config=CONFIG)
    abuse.run(resolver, "www.victim.test")
    answer, exchanges, seconds = run_timed(abuse, resolver, "x.nrdeleg.test")
    assert answer.rcode == dns.rcode.SERVFAIL
    dead = {s for s, _, _ in abuse.questions() if s.startswith("10.9.")}
    assert len(dead) <= CONFIG.max_servers_per_delegation  # 13 of the 100, no more
    assert exchanges <= CONFIG.max_upstream
    assert seconds <= CONFIG.time_budget + 5.0  # the last timeout may end past the budget
    # the next query for the same delegation gives up sooner: the servers are known dead
    again, exchanges2, _ = run_timed(abuse, resolver, "y.nrdeleg.test")
    assert again.rcode == dns.rcode.SERVFAIL and exchanges2 <= exchanges


def test_cname_loop_across_zones_and_a_long_chain(abuse):
    resolver = abuse.resolver(DEFAULT, "10.0.0.1", config=CONFIG)
    answer, exchanges, _ = run_timed(abuse, resolver, "a.victim.test")
    assert answer.rcode == dns.rcode.SERVFAIL and "loop" in answer.ede[1]
    assert exchanges <= 12  # priming, test., victim.test, evil.test, then the loop is seen
    cached, exchanges, _ = run_timed(abuse, resolver, "a.victim.test")
    assert cached.rcode == dns.rcode.SERVFAIL and exchanges <= 2
    # 30 CNAMEs: each reply carries up to 12 of them, so 3 exchanges answer it
    chain, exchanges, _ = run_timed(abuse, resolver, "d0.victim.test")
    assert chain.rcode == dns.rcode.NOERROR and len(chain.answer) == 31 and exchanges <= 3
    # 200 CNAMEs: more than 12 restarts of 12 steps each: given up after 12 exchanges
    chain, exchanges, _ = run_timed(abuse, resolver, "c0.victim.test")
    assert chain.rcode == dns.rcode.SERVFAIL and "restarts" in chain.ede[1]
    assert exchanges <= CONFIG.max_restarts + 1


def test_ns_loop_of_three_glueless_delegations(abuse):
    resolver = abuse.resolver(DEFAULT, "10.0.0.1", config=CONFIG)
    answer, exchanges, seconds = run_timed(abuse, resolver, "www.loop1.test")
    assert answer.rcode == dns.rcode.SERVFAIL
    # 20 today: the test. server is asked for each loop zone's NS a few times over (the
    # delegation is re-fetched once per zone) but never waited out: no timeouts
    assert exchanges <= 24 and seconds < 1.0
    assert not resolver.stats.get("timeouts")


# -- the compression bomb ---------------------------------------------------------------------


def bomb(question: bytes = b"\x01x\x06victim\x04test\x00", response: bool = True) -> bytes:
    """A 64 KB message: the question, one A record owned by a 126-label name, then
    ~4,000 more whose owner names all point at that one (half a million labels for a
    parser to build; dnspython takes ~2.3 s)."""
    body = question + struct.pack("!HH", 1, 1)
    long_name = 12 + len(body)
    body += b"\x01x" * 126 + b"\x00" + struct.pack("!HHIH", 1, 1, 300, 4) + b"\x01\x02\x03\x04"
    count = 1
    while 12 + len(body) + 16 <= 65535:
        pointer = 0xC000 | long_name
        body += struct.pack("!HHHIH", pointer, 1, 1, 300, 4) + b"\x01\x02\x03\x04"
        count += 1
    flags = 0x8400 if response else 0x0100
    return struct.pack("!HHHHHH", 4242, flags, 1, count, 0, 0) + body


def test_the_bomb_is_refused_by_the_guard_in_milliseconds():
    wire = bomb()
    assert len(wire) > 65_000
    started = time.perf_counter()
    assert not within_budget(wire, REPLY_LABELS)
    assert time.perf_counter() - started < 0.5
    # (what it would cost: dnspython builds every label, about half a million, in ~2.3 s)
    real = dns.message.make_response(dns.message.make_query("www.victim.test", "A")).to_wire()
    assert within_budget(real, QUERY_LABELS) and within_budget(real, REPLY_LABELS)


def test_a_bomb_as_a_client_query_gets_formerr_at_once():
    frontend = Frontend(InProcessWorld().resolver(DEFAULT, "10.0.0.1"))
    engine = AuthEngine(
        load_zones([str(Path(__file__).parent / "zones" / "victim.zone")]), ManualClock()
    )
    wire = bomb(response=False)
    started = time.perf_counter()
    for via in (Via.TCP, Via.UDP):
        reply = frontend.receive(wire, ("127.0.0.1", 5300), via)
        assert dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR
        reply = engine.handle(wire, ("192.0.2.1", 5300), via)
        assert dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR
    assert time.perf_counter() - started < 0.5  # four refusals; one parse would be seconds
    assert frontend.stats["too_costly"] == 2 and engine.stats["too_costly"] == 2


def bomb_for(exchange) -> bytes:
    """The bomb as the reply to `exchange`: its ID and its question exactly as sent."""
    sent = dns.message.from_wire(exchange.query.wire)
    return exchange.query.wire[:2] + bomb(sent.question[0].name.to_wire())[2:]


def test_a_bomb_as_an_upstream_reply_is_never_parsed(abuse):
    resolver = abuse.resolver(DEFAULT, "10.0.0.1", config=CONFIG)
    abuse.run(resolver, "www.test")  # warm: the root and test. are cached
    bombs = []

    def bomber(exchange, reply):
        if exchange.query.server[0] != "10.0.0.3":
            return reply
        bombs.append(exchange.tcp)
        return bomb_for(exchange)

    abuse.tamper = bomber
    started = time.perf_counter()
    answer, exchanges, _ = run_timed(abuse, resolver, "www.victim.test")
    assert answer.rcode == dns.rcode.SERVFAIL
    # over UDP the acceptance test refuses it unparsed (as it would a forgery): the query
    # times out and is retried, a bounded number of times
    assert bombs and not any(bombs) and exchanges <= CONFIG.max_upstream
    assert resolver.stats["unwanted_replies"] >= len(bombs)
    assert time.perf_counter() - started < 2.0  # one parse of one bomb would take longer

    # over TCP (no acceptance test) the resolver's own guard refuses to parse it
    def truncate_then_bomb(exchange, reply):
        if exchange.query.server[0] != "10.0.0.3":
            return reply
        if not exchange.tcp:
            message = dns.message.from_wire(reply)
            message.answer = []
            message.flags |= dns.flags.TC
            return message.to_wire()
        bombs.append(True)
        return bomb_for(exchange)

    abuse.tamper = truncate_then_bomb
    started = time.perf_counter()
    answer, exchanges, _ = run_timed(abuse, resolver, "mail.victim.test")
    assert answer.rcode == dns.rcode.SERVFAIL
    assert resolver.stats["too_costly_replies"] == bombs.count(True) >= 1
    assert exchanges <= CONFIG.max_upstream
    assert time.perf_counter() - started < 2.0


# -- the per-zone fetch limit -----------------------------------------------------------------


def test_fetch_limiter_buckets():
    zone = dns.name.from_text("victim.test.")
    other = dns.name.from_text("other.test.")
    limiter = ZoneFetchLimiter(rate=10, burst=5)
    assert [limiter.allow(zone, 0.0) for _ in range(7)] == [True] * 5 + [False] * 2
    assert limiter.allow(other, 0.0)  # another zone has its own bucket
    assert limiter.allow(zone, 0.1) and not limiter.allow(zone, 0.1)  # 10/s refills one
    assert limiter.limited == 3
    off = ZoneFetchLimiter(rate=0)
    assert all(off.allow(zone, 0.0) for _ in range(10_000)) and off.limited == 0
    small = ZoneFetchLimiter(rate=1, max_zones=3)
    for i in range(10):
        small.allow(dns.name.from_text(f"z{i}.test."), 0.0)
    assert len(small) == 3


def test_random_subdomains_are_held_to_the_zone_fetch_limit(abuse):
    config = ResolverConfig(query_localhost=True, zone_fetch_rate=5, zone_fetch_burst=5)
    resolver = abuse.resolver(DEFAULT, "10.0.0.1", config=config)
    abuse.run(resolver, "www.victim.test")
    abuse.clock.now += 10  # a full bucket again
    rng = random.Random(9)
    before = len(abuse.exchanges)
    answered = 0
    for _ in range(200):  # 200 random names in 2 seconds
        answer = abuse.run(resolver, f"r{rng.getrandbits(32):08x}.victim.test")
        answered += answer.rcode == dns.rcode.NXDOMAIN
        abuse.clock.now += 0.01
    to_victim = [s for s, _, _ in abuse.questions()[before:] if s == "10.0.0.3"]
    elapsed = 200 * 0.01 + len(abuse.exchanges[before:]) * abuse.rtt
    assert len(to_victim) <= 5 + 5 * elapsed + 1
    assert resolver.stats["zone_fetch_limited"] >= 150
    assert answered == len(to_victim)  # each query that went out was answered
    # another zone is not limited by the victim's bucket
    other = abuse.run(resolver, "ns.evil.test", "A")
    assert other.rcode == dns.rcode.NOERROR


# -- never an open resolver -------------------------------------------------------------------


@pytest.mark.parametrize("client", ["192.0.2.1", "10.1.2.3", "2001:db8::1", "::ffff:8.8.8.8"])
def test_the_default_settings_refuse_clients_outside_loopback(client):
    frontend = Settings().build(ManualClock())
    query = dns.message.make_query("www.example.com", "ANY", use_edns=0, payload=4096)
    wire = query.to_wire()
    reply = frontend.receive(wire, (client, 4444), Via.UDP)
    message = dns.message.from_wire(reply)
    assert message.rcode() == dns.rcode.REFUSED and not message.answer
    assert len(reply) <= len(wire) + 32  # no amplification: the query and a short EDE
    assert not frontend.resolver.stats.get("upstream_udp")
    assert frontend.stats["refused_acl"] == 1
    ok = frontend.receive(wire, ("127.0.0.1", 4444), Via.UDP)
    assert not isinstance(ok, bytes) or dns.message.from_wire(ok).rcode() != dns.rcode.REFUSED

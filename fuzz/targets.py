"""The fuzz targets: one function per entry point that takes bytes from the outside world.

Owns: turning one fuzzer input into a call of the entry point under test, and the checks
that make a result a crash: an exception the entry point does not document (anything
but `ZoneError` from the zone loader and `RplError` from the .rpl parser), a reply that
dnspython cannot parse or that answers another ID, and a scrubbed reply that would
cache a record outside the queried server's zone.
Must never: touch the network or the disk beyond one scratch file for the zone loader,
or keep state between inputs that changes what an input does (each call is replayable).

Targets: `frontend` (the resolver's `Frontend.receive`, allowed and refused clients, UDP
and TCP, cache hits and misses), `auth` (`AuthEngine.handle`), `scrubber` (`scrub` on
any reply, with and without the bailiwick rules), `zone` (`load_zone` on any file) and
`rpl` (`parse_text` on any scenario text). Inputs are laid out as the seed corpus in
`fuzz/corpus/<target>/` shows (see `fuzz/make_corpus.py`).
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from poisonproof.auth.engine import AuthEngine
from poisonproof.auth.zones import ZoneError, ZoneSet, load_zone, load_zones
from poisonproof.net.base import Via
from poisonproof.replay.rpl import RplError, parse_text
from poisonproof.resolver.cache import Rank
from poisonproof.resolver.defenses import preset
from poisonproof.resolver.frontend import Frontend, Question
from poisonproof.resolver.hints import RootHints
from poisonproof.resolver.iterator import Answer, Resolver, ResolverConfig
from poisonproof.resolver.outgoing import Entropy
from poisonproof.resolver.scrubber import ReplyKind, scrub

ROOT = Path(__file__).resolve().parent.parent
ZONES = ROOT / "src" / "poisonproof" / "data" / "zones"
ALLOWED = ("127.0.0.1", 5300)
STRANGER = ("192.0.2.99", 5300)


class FixedClock:
    """Time that stands still: the same input always meets the same cache state."""

    def monotonic(self) -> float:
        return 1_000.0

    def wall(self) -> float:
        return 1_800_000_000.0


def check_reply(query: bytes, reply: bytes) -> None:
    """A reply must parse with dnspython, be a response, and answer the query's ID."""
    message = dns.message.from_wire(reply)
    assert message.flags & dns.flags.QR, "reply without QR"
    assert reply[:2] == query[:2], "reply to another ID"


# -- the resolver frontend -----------------------------------------------------------------


def _resolver() -> Resolver:
    hints = RootHints(
        dns.rrset.from_text(".", 3_600_000, "IN", "NS", "a.root.test."),
        {dns.name.from_text("a.root.test."): ["10.0.0.1"]},
    )
    resolver = Resolver(
        clock=FixedClock(),
        hints=hints,
        defenses=preset("default"),
        entropy=Entropy(random.Random(1)),
        config=ResolverConfig(query_localhost=True),
    )
    cache = resolver.cache
    for text in (
        "www.example. 300 IN A 192.0.2.80",
        "www.example. 300 IN AAAA 2001:db8::80",
        "alias.example. 300 IN CNAME www.example.",
        "loop1.example. 300 IN CNAME loop2.example.",
        "loop2.example. 300 IN CNAME loop1.example.",
        "big.example. 300 IN TXT " + " ".join(f'"{"x" * 200}{i}"' for i in range(12)),
        "example. 300 IN NS ns.example.",
    ):
        name, ttl, rdclass, rdtype, *rdata = text.split(" ", 4)
        rrset = dns.rrset.from_text(name, int(ttl), rdclass, rdtype, *rdata)
        cache.put(rrset, Rank.ANSWER_AUTH)
    soa = dns.rrset.from_text("example.", 300, "IN", "SOA", "ns.example. h.example. 1 2 3 4 60")
    cache.put_negative(dns.name.from_text("nx.example."), None, soa, Rank.AUTHORITY_AUTH)
    return resolver


_FRONTEND: Frontend | None = None


def frontend(data: bytes) -> None:
    """`Frontend.receive`: the first byte picks client (allowed or not) and transport."""
    global _FRONTEND
    if _FRONTEND is None:
        _FRONTEND = Frontend(_resolver(), fast_path=False)
    if not data:
        return
    peer = STRANGER if data[0] & 1 else ALLOWED
    via = Via.TCP if data[0] & 2 else Via.UDP
    wire = data[1:]
    outcome = _FRONTEND.receive(wire, peer, via)
    if outcome is None:
        return
    if isinstance(outcome, Question):
        assert peer == ALLOWED, "a refused client's query went to the resolver"
        reply = _FRONTEND.render(outcome.query, Answer(dns.rcode.SERVFAIL), via)
    else:
        reply = outcome
    check_reply(wire, reply)
    if via is Via.UDP:
        assert len(reply) <= 65535


# -- the authoritative engine ----------------------------------------------------------------

_ENGINE: AuthEngine | None = None


def auth(data: bytes) -> None:
    """`AuthEngine.handle`: the first byte picks the transport; the rest is the message."""
    global _ENGINE
    if _ENGINE is None:
        zones = load_zones([str(ZONES / f) for f in ("root.zone", "bank.example.zone")])
        _ENGINE = AuthEngine(zones, FixedClock())
    if not data:
        return
    via = Via.TCP if data[0] & 1 else Via.UDP
    wire = data[1:]
    reply = _ENGINE.handle(wire, ("192.0.2.1", 4000), via)
    assert _ENGINE.stats["servfail_internal"] == 0, "the engine failed internally"
    if reply is not None:
        check_reply(wire, reply)


# -- the scrubber ----------------------------------------------------------------------------


def scrubber(data: bytes) -> None:
    """`scrub`: byte 0 is how many labels of the question name the server's zone keeps
    (its bailiwick), byte 1 picks the bailiwick rules on or off; the rest is the reply."""
    if len(data) < 2:
        return
    try:
        reply = dns.message.from_wire(data[2:])
    except Exception:
        return  # unparsable replies never reach the scrubber (`Resolver._ask`)
    if len(reply.question) != 1:
        return
    qname = reply.question[0].name
    qtype = int(reply.question[0].rdtype)
    keep = min(data[0], len(qname.labels))
    zone = dns.name.Name(qname.labels[len(qname.labels) - keep :]) if keep else dns.name.root
    bailiwick = not data[1] & 1
    out = scrub(reply, qname, qtype, zone, bailiwick=bailiwick)
    if not bailiwick:
        return
    for rrset, _rank in out.to_cache:
        assert rrset.name.is_subdomain(zone), f"would cache {rrset.name} from a {zone} server"
    for rrset in out.glue:
        assert rrset.name.is_subdomain(zone), f"glue {rrset.name} from a {zone} server"
    if out.referral_zone is not None:
        assert out.referral_zone.is_subdomain(zone)
    if out.kind in (ReplyKind.NXDOMAIN, ReplyKind.NODATA):
        # `Resolver._store` caches the denial under `final_name`: it must be the server's
        assert out.final_name.is_subdomain(zone), f"would deny {out.final_name} for {zone}"


# -- the zone-file loader --------------------------------------------------------------------

_SCRATCH = Path(tempfile.gettempdir()) / f"poisonproof-fuzz-zone-{os.getpid()}.zone"


def zone(data: bytes) -> None:
    """`load_zone` on any bytes as a file; a zone that loads is served one query."""
    _SCRATCH.write_bytes(data)
    try:
        served = load_zone(_SCRATCH, origin="example." if data[:1] == b"@" else None)
    except ZoneError:
        return
    engine = AuthEngine(ZoneSet([served]), FixedClock())
    for name in (served.origin, dns.name.from_text("www", served.origin)):
        for rdtype in (dns.rdatatype.SOA, dns.rdatatype.A, dns.rdatatype.ANY):
            try:
                query = dns.message.make_query(name, rdtype, want_dnssec=True).to_wire()
            except dns.name.NameTooLong:
                continue
            reply = engine.handle(query, ("192.0.2.1", 4000), Via.TCP)
            assert reply is not None and engine.stats["servfail_internal"] == 0
            check_reply(query, reply)


# -- the .rpl parser -------------------------------------------------------------------------


def rpl(data: bytes) -> None:
    """`parse_text` on any text (read as `parse_file` reads a file)."""
    text = data.decode("utf-8", errors="surrogateescape")
    try:
        parse_text(text, "fuzz.rpl")
    except RplError:
        return


TARGETS: dict[str, Callable[[bytes], None]] = {
    "frontend": frontend,
    "auth": auth,
    "scrubber": scrubber,
    "zone": zone,
    "rpl": rpl,
}

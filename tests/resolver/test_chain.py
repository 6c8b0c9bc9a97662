"""The chain of trust end to end: a signed root and zones served in process, validated.

Root (signed, anchor = its DS) -> example. (signed, DS at the root) and open. (unsigned,
no DS). Checks secure answers, proven NXDOMAIN, insecure delegations, forged data, the
Extended DNS Errors a client sees, and the KeyTrap guard on a zone full of keys.
"""

from __future__ import annotations

import time
from pathlib import Path

import dns.dnssec
import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from poisonproof.net.base import Via
from poisonproof.resolver.anchors import TrustAnchors
from poisonproof.resolver.defenses import DEFAULT
from poisonproof.resolver.frontend import Frontend
from poisonproof.resolver.iterator import Resolver, ResolverConfig
from poisonproof.resolver.validator import Ede, Security
from tests.resolver.inprocess import InProcessWorld, ManualClock

NOW = time.time()
ALG = dns.dnssec.Algorithm.ECDSAP256SHA256

ROOT = """$ORIGIN .
$TTL 3600
@ SOA a.root.test. host.root.test. 1 1800 900 604800 300
@ NS a.root.test.
a.root.test. A 10.0.0.1
example. NS ns.example.
ns.example. A 10.0.0.2
open. NS ns.open.
ns.open. A 10.0.0.3
"""
EXAMPLE = """$ORIGIN example.
$TTL 3600
@ SOA ns.example. host.example. 1 1800 900 604800 300
@ NS ns
ns A 10.0.0.2
www A 192.0.2.80
www TXT "the www host"
alias CNAME www
*.wild A 192.0.2.81
*.walias CNAME www
"""
OPEN = """$ORIGIN open.
$TTL 3600
@ SOA ns.open. host.open. 1 1800 900 604800 300
@ NS ns
ns A 10.0.0.3
www A 192.0.2.90
"""


def _key() -> tuple[ec.EllipticCurvePrivateKey, dns.rdata.Rdata]:
    private = ec.generate_private_key(ec.SECP256R1())
    return private, dns.dnssec.make_dnskey(private.public_key(), ALG, flags=257)


def _signed(text: str, origin: str, extra_keys: int = 0) -> tuple[dns.zone.Zone, dns.rdata.Rdata]:
    zone = dns.zone.from_text(text, origin, relativize=False)
    private, dnskey = _key()
    keys = [(private, dnskey)] + [_key() for _ in range(extra_keys)]
    with zone.writer() as txn:
        dns.dnssec.sign_zone(
            zone,
            txn,
            keys=keys[:1],
            inception=NOW - 3600,
            expiration=NOW + 86400,
        )
        if extra_keys:
            rrset = dns.rrset.RRset(zone.origin, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
            for _, key in keys[1:]:
                rrset.add(key, 3600)
            txn.add(rrset)
    return zone, dnskey


def _write(zone: dns.zone.Zone, path: Path) -> Path:
    zone.to_file(str(path), relativize=False, want_origin=True)
    return path


def _add_ds(text: str, child: str, dnskey: dns.rdata.Rdata) -> str:
    ds = dns.dnssec.make_ds(child, dnskey, "SHA256")
    return text + f"{child} DS {ds.to_text()}\n"


@pytest.fixture
def signed(tmp_path: Path) -> tuple[InProcessWorld, TrustAnchors]:
    example, example_key = _signed(EXAMPLE, "example.")
    root, root_key = _signed(_add_ds(ROOT, "example.", example_key), ".")
    world = InProcessWorld(ManualClock(NOW))
    world.serve("10.0.0.1", [_write(root, tmp_path / "root.zone")])
    world.serve("10.0.0.2", [_write(example, tmp_path / "example.zone")])
    open_zone = tmp_path / "open.zone"
    open_zone.write_text(OPEN)
    world.serve("10.0.0.3", [open_zone])
    anchors = TrustAnchors()
    anchors.add_text([f". 3600 IN DS {dns.dnssec.make_ds('.', root_key, 'SHA256').to_text()}"])
    return world, anchors


def _resolver(world: InProcessWorld, anchors: TrustAnchors) -> Resolver:
    resolver = world.resolver(DEFAULT, "10.0.0.1", config=ResolverConfig(query_localhost=True))
    return Resolver(
        clock=resolver.clock,
        hints=resolver.hints,
        defenses=DEFAULT,
        entropy=resolver.factory.entropy,
        config=resolver.config,
        anchors=anchors,
    )


def test_a_signed_answer_is_secure_and_carries_its_signatures(signed) -> None:
    world, anchors = signed
    answer = world.run(_resolver(world, anchors), "www.example.")
    assert answer.rcode == dns.rcode.NOERROR and answer.security is Security.SECURE
    assert (dns.name.from_text("www.example."), dns.rdatatype.A) in answer.sigs


def test_nxdomain_in_a_signed_zone_is_proven(signed) -> None:
    world, anchors = signed
    answer = world.run(_resolver(world, anchors), "nope.example.")
    assert answer.rcode == dns.rcode.NXDOMAIN and answer.security is Security.SECURE
    assert any(r.rdtype == dns.rdatatype.NSEC for r in answer.denial)


def test_a_wildcard_answer_needs_and_has_its_proof(signed) -> None:
    world, anchors = signed
    answer = world.run(_resolver(world, anchors), "host.wild.example.")
    assert answer.security is Security.SECURE
    assert any(r.rdtype == dns.rdatatype.NSEC for r in answer.denial)


def test_an_unsigned_delegation_is_insecure_not_bogus(signed) -> None:
    world, anchors = signed
    answer = world.run(_resolver(world, anchors), "www.open.")
    assert answer.rcode == dns.rcode.NOERROR and answer.security is Security.INSECURE


def test_a_forged_address_is_bogus_and_the_client_gets_servfail_with_ede(signed) -> None:
    world, anchors = signed

    def forge(exchange, reply):  # an attacker who won the race, without the zone's key
        if reply is None or b"www" not in exchange.query.wire.lower():
            return reply
        message = dns.message.from_wire(reply)
        for rrset in message.answer:
            if rrset.rdtype == dns.rdatatype.A:
                rrset.clear()
                rrset.add(dns.rdata.from_text("IN", "A", "203.0.113.66"))
        return message.to_wire()

    world.tamper = forge
    resolver = _resolver(world, anchors)
    frontend = Frontend(resolver, fast_path=False)
    answer = world.run(resolver, "www.example.")
    assert answer.security is Security.BOGUS and answer.bogus is not None
    query = dns.message.make_query("www.example.", "A", want_dnssec=True)
    reply = dns.message.from_wire(frontend.render(query, answer, Via.UDP))
    assert reply.rcode() == dns.rcode.SERVFAIL
    assert [o.code for o in reply.options if isinstance(o, dns.edns.EDEOption)] == [
        Ede.DNSSEC_BOGUS
    ]
    checking_disabled = dns.message.make_query("www.example.", "A", want_dnssec=True)
    checking_disabled.flags |= dns.flags.CD
    reply = dns.message.from_wire(frontend.render(checking_disabled, answer, Via.UDP))
    assert reply.rcode() == dns.rcode.NOERROR and "203.0.113.66" in reply.to_text()
    assert not reply.flags & dns.flags.AD


def test_ad_is_set_only_when_the_client_asks_for_it(signed) -> None:
    world, anchors = signed
    resolver = _resolver(world, anchors)
    answer = world.run(resolver, "www.example.")
    frontend = Frontend(resolver, fast_path=False)
    plain = dns.message.make_query("www.example.", "A", use_edns=0)
    assert not dns.message.from_wire(frontend.render(plain, answer, Via.UDP)).flags & dns.flags.AD
    do = dns.message.make_query("www.example.", "A", want_dnssec=True)
    reply = dns.message.from_wire(frontend.render(do, answer, Via.UDP))
    assert reply.flags & dns.flags.AD
    assert any(r.rdtype == dns.rdatatype.RRSIG for r in reply.answer)


def test_keytrap_many_keys_and_signatures_cost_a_bounded_number_of_checks(
    tmp_path: Path,
) -> None:
    """KeyTrap (CVE-2023-50387): 40 keys, and 40 bad signatures over the answer, each
    with the tag of one of the keys. Unbounded, 1,600 checks; here a handful, SERVFAIL."""
    keys = [_key() for _ in range(40)]
    zone = dns.zone.from_text(EXAMPLE, "example.", relativize=False)
    with zone.writer() as txn:
        dns.dnssec.sign_zone(zone, txn, keys=keys[:1], inception=NOW - 3600, expiration=NOW + 86400)
    with zone.writer() as txn:
        dnskeys = dns.rrset.RRset(zone.origin, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
        for _, key in keys:
            dnskeys.add(key, 3600)
        txn.replace(zone.origin, dnskeys.to_rdataset())
        # re-sign the DNSKEY set with the first key so the keys themselves validate
        key_sig = dns.dnssec.sign(
            dnskeys,
            keys[0][0],
            zone.origin,
            keys[0][1],
            inception=NOW - 3600,
            expiration=NOW + 86400,
        )
        txn.replace(
            zone.origin,
            dns.rdataset.from_rdata_list(3600, [key_sig]),
        )
        www = dns.name.from_text("www.example.")
        wrong = dns.rrset.from_text(www, 3600, "IN", "A", "198.51.100.1")
        bad = [
            dns.dnssec.sign(
                wrong,
                private,
                zone.origin,
                dnskey,
                inception=NOW - 3600,
                expiration=NOW + 86400,
            )
            for private, dnskey in keys
        ]
        txn.replace(www, dns.rdataset.from_rdata_list(3600, bad))
    world = InProcessWorld(ManualClock(NOW))
    root, root_key = _signed(_add_ds(ROOT, "example.", keys[0][1]), ".")
    world.serve("10.0.0.1", [_write(root, tmp_path / "root.zone")])
    world.serve("10.0.0.2", [_write(zone, tmp_path / "example.zone")])
    anchors = TrustAnchors()
    anchors.add_text([f". 3600 IN DS {dns.dnssec.make_ds('.', root_key, 'SHA256').to_text()}"])
    resolver = _resolver(world, anchors)
    started = time.process_time()
    answer = world.run(resolver, "www.example.")
    spent = time.process_time() - started
    assert answer.security is Security.BOGUS
    assert answer.bogus is not None and "limit" in answer.bogus[1]
    assert spent < 5.0  # the unbounded work is 1,600 ECDSA checks per try, three tries


def test_random_subdomains_of_a_signed_zone_are_answered_from_cached_nsec(signed) -> None:
    """RFC 8198: after one proven NXDOMAIN, a water-torture flood of random names in
    the same NSEC gap costs no upstream query."""
    world, anchors = signed
    resolver = _resolver(world, anchors)
    first = world.run(resolver, "xa1.example.")
    assert first.rcode == dns.rcode.NXDOMAIN and first.security is Security.SECURE
    asked = len(world.exchanges)
    for n in range(50):
        answer = world.run(resolver, f"xq{n}z.example.")
        assert answer.rcode == dns.rcode.NXDOMAIN and answer.security is Security.SECURE
        assert any(r.rdtype == dns.rdatatype.NSEC for r in answer.denial)
    assert len(world.exchanges) == asked
    assert resolver.stats["aggressive_nsec"] == 50
    existing = world.run(resolver, "www.example.")  # a real name is not denied
    assert existing.rcode == dns.rcode.NOERROR


def test_a_bogus_denial_after_a_secure_cname_is_dropped_and_the_target_asked_alone(
    signed, tmp_path: Path
) -> None:
    """The server answers `alias TXT` with the signed CNAME to www and a denial that www
    has no TXT, though www's own signed NSEC lists TXT (a broken server, or a replayed
    denial): the chain stands, the denial is refused (and not left in the cache), and www
    TXT is asked on its own, so the client gets the real, secure answer, not SERVFAIL."""
    world, anchors = signed
    zone = dns.zone.from_file(str(tmp_path / "example.zone"), relativize=False)
    www = dns.name.from_text("www.example.")
    origin = dns.name.from_text("example.")

    def signed_set(name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> list:
        return [
            zone.find_rrset(name, rdtype),
            zone.find_rrset(name, dns.rdatatype.RRSIG, rdtype),
        ]

    def deny_the_target(exchange, reply):
        query = dns.message.from_wire(exchange.query.wire)
        question = query.question[0]
        if reply is None or question.name.to_text().lower() != "alias.example.":
            return reply
        message = dns.message.from_wire(reply)
        message.answer = [r for r in message.answer if r.name != www]
        message.authority = signed_set(origin, dns.rdatatype.SOA) + signed_set(
            www, dns.rdatatype.NSEC
        )
        return message.to_wire()

    world.tamper = deny_the_target
    resolver = _resolver(world, anchors)
    answer = world.run(resolver, "alias.example.", "TXT")
    assert answer.rcode == dns.rcode.NOERROR and answer.security is Security.SECURE
    assert [(r.name.to_text(), dns.rdatatype.to_text(r.rdtype)) for r in answer.answer] == [
        ("alias.example.", "CNAME"),
        ("www.example.", "TXT"),
    ]
    assert resolver.stats["bogus_denial_after_chain"] == 1
    assert ("www.example.", "TXT") in [(n.lower(), t) for _, n, t in world.questions()]
    again = world.run(resolver, "www.example.", "TXT")
    assert again.from_cache and again.security is Security.SECURE and again.answer


def test_a_kept_wildcard_answers_other_absent_names_without_asking(signed) -> None:
    """RFC 8198 §5.3: after one validated expansion of *.wild.example. (and of the CNAME
    at *.walias.example.), other names below them are answered from the cache, secure,
    with the NSEC that proves the expansion, and no upstream query."""
    world, anchors = signed
    resolver = _resolver(world, anchors)
    first = world.run(resolver, "host.wild.example.")
    assert first.security is Security.SECURE and not first.from_cache
    via_cname = world.run(resolver, "x.walias.example.")
    assert via_cname.security is Security.SECURE
    asked = len(world.exchanges)
    answer = world.run(resolver, "other.wild.example.")
    assert len(world.exchanges) == asked
    assert answer.rcode == dns.rcode.NOERROR and answer.security is Security.SECURE
    (rrset,) = answer.answer
    assert rrset.to_text().split() == [
        "other.wild.example.",
        str(rrset.ttl),
        "IN",
        "A",
        "192.0.2.81",
    ]
    assert 0 < rrset.ttl <= 300  # no longer than the NSEC (the SOA minimum) that proves it
    assert any(r.rdtype == dns.rdatatype.NSEC for r in answer.denial)
    chained = world.run(resolver, "y.walias.example.")
    assert len(world.exchanges) == asked
    assert chained.security is Security.SECURE
    assert [(r.name.to_text(), dns.rdatatype.to_text(r.rdtype)) for r in chained.answer] == [
        ("y.walias.example.", "CNAME"),
        ("www.example.", "A"),
    ]
    assert any(r.rdtype == dns.rdatatype.NSEC for r in chained.denial)  # the CNAME's proof
    assert resolver.stats["aggressive_wildcard"] == 2
    frontend = Frontend(resolver, fast_path=False)
    query = dns.message.make_query("other.wild.example.", "A", want_dnssec=True)
    reply = dns.message.from_wire(frontend.render(query, answer, Via.UDP))
    assert reply.flags & dns.flags.AD
    (sigs,) = [r for r in reply.answer if r.rdtype == dns.rdatatype.RRSIG]
    assert sigs.name == dns.name.from_text("other.wild.example.") and sigs[0].labels == 2
    assert any(r.rdtype == dns.rdatatype.NSEC for r in reply.authority)
    elsewhere = world.run(resolver, "nope.example.")  # not below a kept wildcard
    assert elsewhere.rcode == dns.rcode.NXDOMAIN and len(world.exchanges) > asked

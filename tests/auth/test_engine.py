"""The authoritative engine, driven with dnspython messages (no sockets)."""

from __future__ import annotations

from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest

from poisonproof.auth.engine import AuthEngine
from poisonproof.auth.zones import load_zones
from poisonproof.net.base import Via
from poisonproof.net.real import SystemClock

PEER = ("192.0.2.1", 40000)


@pytest.fixture(scope="module")
def engine(zone_dir: Path) -> AuthEngine:
    specs = [str(zone_dir / f) for f in ("root.zone", "example.zone", "bank.example.zone")]
    return AuthEngine(load_zones(specs), SystemClock())


def ask(
    engine: AuthEngine, qname: str, qtype: str = "A", via: Via = Via.UDP, **kw
) -> dns.message.Message:
    query = dns.message.make_query(qname, qtype, **kw)
    wire = engine.handle(query.to_wire(), PEER, via)
    assert wire is not None
    reply = dns.message.from_wire(wire)
    assert reply.id == query.id
    return reply


def rrset_texts(section) -> set[str]:
    return {r.to_text().lower() for r in section}


def test_authoritative_answer_has_aa_and_exact_question_case(engine):
    reply = ask(engine, "WwW.BaNk.ExAmPlE.")
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.AA
    assert reply.question[0].name.to_text() == "WwW.BaNk.ExAmPlE."
    assert reply.answer[0].name.to_text() == "WwW.BaNk.ExAmPlE."
    assert [r.address for r in reply.answer[0]] == ["192.0.2.80"]


def test_cname_chain_inside_zone_is_followed(engine):
    reply = ask(engine, "portal.bank.example.")
    chain = [(r.name.to_text(), dns.rdatatype.to_text(r.rdtype)) for r in reply.answer]
    assert chain == [
        ("portal.bank.example.", "CNAME"),
        ("login.bank.example.", "CNAME"),
        ("www.bank.example.", "A"),
    ]
    assert reply.flags & dns.flags.AA


def test_wildcard_synthesizes_with_query_name(engine):
    reply = ask(engine, "img.cdn.bank.example.")
    assert reply.answer[0].name == dns.name.from_text("img.cdn.bank.example.")
    assert reply.answer[0][0].address == "192.0.2.99"
    # cdn.bank.example itself is an empty non-terminal: NODATA, not NXDOMAIN (RFC 4592 §2.2.2)
    ent = ask(engine, "cdn.bank.example.")
    assert ent.rcode() == dns.rcode.NOERROR and not ent.answer


def test_nxdomain_carries_soa_with_rfc2308_negative_ttl(engine):
    reply = ask(engine, "x7f3.bank.example.")
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert reply.flags & dns.flags.AA
    (soa,) = reply.authority
    assert soa.rdtype == dns.rdatatype.SOA
    assert soa.ttl == min(300, 60)  # min(SOA TTL, SOA MINIMUM)


def test_nodata_carries_soa(engine):
    reply = ask(engine, "mail.bank.example.", "AAAA")
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
    assert reply.authority[0].rdtype == dns.rdatatype.SOA


def test_referral_has_no_aa_and_glue_only_inside_the_delegated_zone(engine):
    reply = ask(engine, "www.bank.example.")  # the TLD zone is also served, but bank wins
    assert reply.flags & dns.flags.AA
    tld_only = AuthEngine(
        load_zones([str(Path(engine.zones.find(dns.name.from_text("example.")).source))]),
        SystemClock(),
    )
    referral = ask(tld_only, "x.attacker.example.")
    assert not referral.flags & dns.flags.AA
    assert not referral.answer
    assert rrset_texts(referral.authority) == {"attacker.example. 86400 in ns ns.attacker.example."}
    assert rrset_texts(referral.additional) == {"ns.attacker.example. 86400 in a 127.53.0.66"}


def test_referral_omits_out_of_bailiwick_glue(tmp_path):
    zone = tmp_path / "tld.zone"
    zone.write_text(
        "$ORIGIN tld.\n$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 10.0.0.1\n"
        "child NS ns.child\nchild NS ns.other\nns.child A 10.0.0.2\nother NS ns.other\n"
        "ns.other A 10.0.0.3\n"
    )
    eng = AuthEngine(load_zones([str(zone)]), SystemClock())
    reply = ask(eng, "www.child.tld.")
    assert {r.name.to_text() for r in reply.additional} == {"ns.child.tld."}


def test_ds_is_answered_by_the_parent(engine):
    reply = ask(engine, "bank.example.", "DS")
    # the parent (example.) holds no DS for bank: an authoritative NODATA from the parent
    assert reply.flags & dns.flags.AA
    assert reply.authority[0].name == dns.name.from_text("example.")
    ns = ask(engine, "bank.example.", "NS")
    assert ns.answer[0].name == dns.name.from_text("bank.example.")  # from the child


def test_any_is_minimal(engine):
    reply = ask(engine, "www.bank.example.", "ANY")
    assert len(reply.answer) == 1


def test_refused_outside_served_zones(engine):
    engine_without_root = AuthEngine(
        load_zones([engine.zones.find(dns.name.from_text("bank.example.")).source]), SystemClock()
    )
    assert ask(engine_without_root, "www.google.com.").rcode() == dns.rcode.REFUSED


def test_edns_payload_do_and_badvers(engine):
    reply = ask(engine, "www.bank.example.", use_edns=0, payload=4096, want_dnssec=True)
    assert reply.edns == 0 and reply.payload == 1232
    assert reply.ednsflags & dns.flags.DO
    plain = ask(engine, "www.bank.example.")
    assert plain.edns == -1
    bad = ask(engine, "www.bank.example.", use_edns=1)
    assert bad.rcode() == dns.rcode.BADVERS
    assert bad.edns == 0


def test_udp_truncation_then_full_answer_over_tcp(engine):
    small = ask(engine, "big.bank.example.", "TXT")
    assert small.flags & dns.flags.TC and not small.answer
    large = ask(engine, "big.bank.example.", "TXT", use_edns=0, payload=1232)
    assert not large.flags & dns.flags.TC and len(large.answer[0]) == 5
    tcp = ask(engine, "big.bank.example.", "TXT", via=Via.TCP)
    assert not tcp.flags & dns.flags.TC and len(tcp.answer[0]) == 5


def test_formerr_notimp_and_silence(engine):
    query = dns.message.make_query("www.bank.example.", "A")
    wire = query.to_wire()
    garbage = wire[:12] + b"\xff\xff\xff"
    formerr = engine.handle(garbage, PEER, Via.UDP)
    assert formerr is not None and formerr[:2] == wire[:2] and formerr[3] & 0x0F == 1
    assert engine.handle(b"\x00" * 5, PEER, Via.UDP) is None  # shorter than a header
    response_bit = wire[:2] + bytes([wire[2] | 0x80]) + wire[3:]
    assert engine.handle(response_bit, PEER, Via.UDP) is None  # never answer a response
    notify = dns.message.make_query("bank.example.", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    reply = dns.message.from_wire(engine.handle(notify.to_wire(), PEER, Via.UDP))
    assert reply.rcode() == dns.rcode.NOTIMP
    two = dns.message.make_query("www.bank.example.", "A")
    two.question.append(dns.message.make_query("mail.bank.example.", "A").question[0])
    assert dns.message.from_wire(engine.handle(two.to_wire(), PEER, Via.UDP)).rcode() == (
        dns.rcode.FORMERR
    )
    assert ask(engine, "bank.example.", "AXFR").rcode() == dns.rcode.REFUSED


def test_dname_substitution(tmp_path):
    zone = tmp_path / "d.zone"
    zone.write_text(
        "$ORIGIN d.test.\n$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 10.0.0.1\n"
        "old DNAME new\nwww.new A 10.0.0.9\n"
    )
    eng = AuthEngine(load_zones([str(zone)]), SystemClock())
    reply = ask(eng, "www.old.d.test.")
    types = [dns.rdatatype.to_text(r.rdtype) for r in reply.answer]
    assert types == ["DNAME", "CNAME", "A"]
    assert reply.answer[1][0].target == dns.name.from_text("www.new.d.test.")


def test_identical_questions_are_replayed_with_their_own_id_and_case(zone_dir):
    engine = AuthEngine(load_zones([str(zone_dir / "bank.example.zone")]), SystemClock())
    first = ask(engine, "portal.bank.example.")
    again = ask(engine, "PORTAL.bank.EXAMPLE.")
    assert engine.stats["replayed"] == 1
    assert again.question[0].name.to_text() == "PORTAL.bank.EXAMPLE."
    assert again.answer[0].name.to_text() == "PORTAL.bank.EXAMPLE."
    assert [r.to_text().lower() for r in again.answer] == [
        r.to_text().lower() for r in first.answer
    ]
    engine.zones = engine.zones  # a reload forgets every stored reply
    ask(engine, "portal.bank.example.")
    assert engine.stats["replayed"] == 1


def test_a_query_with_a_cookie_is_replayed_byte_for_byte_as_rendered(zone_dir):
    """The engine ignores DNS cookies (RFC 7873 section 5.2), so its replay of a reply to
    a query carrying one is exactly what the full path renders for it."""
    cookie = [dns.edns.CookieOption(b"clientck", b"")]
    fresh = AuthEngine(load_zones([str(zone_dir / "bank.example.zone")]), SystemClock())
    query = dns.message.make_query("WWW.bank.example.", "A", use_edns=0, options=cookie)
    query.id = 4242
    rendered = fresh.handle(query.to_wire(), PEER, Via.UDP)
    engine = AuthEngine(load_zones([str(zone_dir / "bank.example.zone")]), SystemClock())
    ask(engine, "www.bank.example.", use_edns=0)  # stored, from a query without a cookie
    assert engine.handle(query.to_wire(), PEER, Via.UDP) == rendered
    assert engine.stats["replayed"] == 1
    bad = dns.message.make_query("www.bank.example.", "A", use_edns=0)
    bad.use_edns(0, options=[dns.edns.GenericOption(10, b"short")])  # malformed cookie
    assert engine.handle(bad.to_wire(), PEER, Via.UDP) is not None
    assert engine.stats["replayed"] == 1  # not replayed: the full path decides

"""The scrubber's canonical form: the fast paths give exactly what the wire round trip gives."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rdata
import dns.rdatatype
import dns.rrset
import pytest

from poisonproof.resolver import scrubber
from poisonproof.resolver.scrubber import _LOWERED, canonical

MIXED = {
    "A": ["192.0.2.1", "192.0.2.2"],
    "AAAA": ["2001:db8::1"],
    "TXT": ['"Hello World"', '"MiXeD"'],
    "DS": ["12345 8 2 " + "AB" * 32],
    "DNSKEY": ["257 3 8 AwEAAaQQ" + "ABCD" * 10],
    "NSEC": ["NeXt.ExAmPlE. A NS SOA RRSIG NSEC"],
    "NSEC3": ["1 0 0 - 2T7B4G4VSA5SMI47K61MV5BV1A22BOJR A RRSIG"],
    "NSEC3PARAM": ["1 0 0 -"],
    "DNAME": ["TaRgEt.ExAmPlE."],
    "CAA": ['0 issue "CA.Example.net"'],
    "SSHFP": ["1 1 " + "ab" * 20],
    "TLSA": ["3 1 1 " + "CD" * 32],
    "NS": ["Ns1.ExAmPlE.", "ns2.example."],
    "CNAME": ["WwW.Other.ExAmPlE."],
    "PTR": ["HoSt.ExAmPlE."],
    "MX": ["10 MaIl.ExAmPlE.", "20 mx.example."],
    "SRV": ["0 5 443 SrV.ExAmPlE."],
    "SOA": ["Ns1.ExAmPlE. HostMaster.ExAmPlE. 1 2 3 4 5"],
    "RRSIG": ["A 8 2 300 20300101000000 20200101000000 12345 ExAmPlE. " + "AbCd" * 20],
}


def round_trip(rrset: dns.rrset.RRset) -> dns.rrset.RRset:
    """The reference: every rdata through to_digestable and back (RFC 4034 §6.2)."""
    out = dns.rrset.RRset(rrset.name.canonicalize(), rrset.rdclass, rrset.rdtype, rrset.covers)
    for rdata in rrset:
        wire = rdata.to_digestable()
        out.add(dns.rdata.from_wire(rrset.rdclass, rrset.rdtype, wire, 0, len(wire)), rrset.ttl)
    return out


def exact(rrset: dns.rrset.RRset) -> list[bytes]:
    """Every record as uncompressed wire, case kept: any case difference shows."""
    return [
        rrset.name.to_wire() + rdata.to_wire() + rrset.ttl.to_bytes(4, "big") for rdata in rrset
    ]


def test_every_fast_type_is_tested() -> None:
    assert {dns.rdatatype.from_text(t) for t in MIXED} == set(_LOWERED)


@pytest.mark.parametrize("rdtype", sorted(MIXED))
@pytest.mark.parametrize("owner", ["WwW.ExAmPlE.", "www.example."])
def test_fast_path_equals_the_wire_round_trip(
    rdtype: str, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rrset = dns.rrset.from_text(owner, 300, "IN", rdtype, *MIXED[rdtype])
    expected = round_trip(rrset)
    calls = []
    real = dns.rdata.from_wire
    monkeypatch.setattr(
        scrubber.dns.rdata, "from_wire", lambda *a, **k: calls.append(a) or real(*a, **k)
    )
    got = canonical(rrset)
    assert calls == []  # no wire round trip for these types
    assert got is not rrset
    assert got == expected
    assert exact(got) == exact(expected)
    assert (got.ttl, got.rdclass, got.rdtype, got.covers) == (
        expected.ttl,
        expected.rdclass,
        expected.rdtype,
        expected.covers,
    )


def test_the_reply_rrset_is_never_changed_or_shared() -> None:
    rrset = dns.rrset.from_text("WwW.ExAmPlE.", 300, "IN", "A", "192.0.2.1")
    before = exact(rrset)
    got = canonical(rrset)
    got.add(dns.rdata.from_text("IN", "A", "192.0.2.9"))
    assert exact(rrset) == before
    assert len(rrset) == 1


def test_other_types_take_the_round_trip() -> None:
    rrset = dns.rrset.from_text("WwW.ExAmPlE.", 300, "IN", "HINFO", '"PC" "LiNuX"')
    assert exact(canonical(rrset)) == exact(round_trip(rrset))


@pytest.mark.parametrize("rcode", [0, 3, 5, 16, 23])
def test_the_canonical_copy_keeps_the_reply_rcode_and_flags(rcode: int) -> None:
    """Extended rcodes (16 BADVERS, 23 BADCOOKIE) live partly in the EDNS flags."""
    reply = dns.message.make_response(dns.message.make_query("WwW.Example.", "A", use_edns=0))
    reply.flags |= dns.flags.AA
    reply.set_rcode(rcode)
    reply.answer = [dns.rrset.from_text("WwW.Example.", 60, "IN", "A", "192.0.2.1")]
    copy = scrubber._canonical_message(reply)
    assert copy.rcode() == reply.rcode() == rcode
    assert copy.flags == reply.flags and copy.id == reply.id
    assert copy.answer[0].name.labels == (b"www", b"example", b"")

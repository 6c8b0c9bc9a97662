"""Signature checks and DS matching (resolver/validator.py) on keys made here."""

from __future__ import annotations

import time

import dns.dnssec
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from cryptography.hazmat.primitives.asymmetric import ec

from poisonproof.resolver.anchors import AnchorError, TrustAnchors
from poisonproof.resolver.validator import (
    CryptoBudget,
    Ede,
    Security,
    verify_dnskeys,
    verify_rrset,
)

ZONE = dns.name.from_text("example.")
NOW = time.time()


def _keys() -> tuple[ec.EllipticCurvePrivateKey, dns.rrset.RRset]:
    private = ec.generate_private_key(ec.SECP256R1())
    dnskey = dns.dnssec.make_dnskey(
        private.public_key(), dns.dnssec.Algorithm.ECDSAP256SHA256, flags=257
    )
    rrset = dns.rrset.RRset(ZONE, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
    rrset.add(dnskey, 3600)
    return private, rrset


PRIVATE, KEYS = _keys()


def _sign(
    rrset: dns.rrset.RRset,
    *,
    inception: float = NOW - 3600,
    expiration: float = NOW + 86400,
    private: ec.EllipticCurvePrivateKey = PRIVATE,
    keys: dns.rrset.RRset = KEYS,
) -> dns.rrset.RRset:
    sig = dns.dnssec.sign(rrset, private, ZONE, keys[0], inception=inception, expiration=expiration)
    out = dns.rrset.RRset(rrset.name, dns.rdataclass.IN, dns.rdatatype.RRSIG, rrset.rdtype)
    out.add(sig, rrset.ttl)
    return out


def _a(name: str = "www.example.", ttl: int = 300) -> dns.rrset.RRset:
    return dns.rrset.from_text(name, ttl, "IN", "A", "192.0.2.1")


def test_a_signed_rrset_is_secure_and_keeps_the_smaller_ttl() -> None:
    rrset = _a(ttl=300)
    verdict = verify_rrset(rrset, _sign(rrset), ZONE, KEYS, NOW, CryptoBudget())
    assert verdict.security is Security.SECURE
    assert verdict.ttl == 300 and verdict.wildcard is None


def test_tampered_data_is_bogus() -> None:
    rrset = _a()
    sigs = _sign(rrset)
    forged = dns.rrset.from_text("www.example.", 300, "IN", "A", "203.0.113.66")
    verdict = verify_rrset(forged, sigs, ZONE, KEYS, NOW, CryptoBudget())
    assert verdict.security is Security.BOGUS
    assert verdict.ede == Ede.DNSSEC_BOGUS and "does not verify" in verdict.reason


def test_missing_signature_names_the_ede() -> None:
    verdict = verify_rrset(_a(), None, ZONE, KEYS, NOW, CryptoBudget())
    assert verdict.security is Security.BOGUS and verdict.ede == Ede.RRSIGS_MISSING


def test_expired_and_not_yet_valid_signatures() -> None:
    rrset = _a()
    old = _sign(rrset, inception=NOW - 7200, expiration=NOW - 3600)
    assert verify_rrset(rrset, old, ZONE, KEYS, NOW, CryptoBudget()).ede == Ede.SIGNATURE_EXPIRED
    early = _sign(rrset, inception=NOW + 3600, expiration=NOW + 7200)
    verdict = verify_rrset(rrset, early, ZONE, KEYS, NOW, CryptoBudget())
    assert verdict.ede == Ede.SIGNATURE_NOT_YET_VALID


def test_a_signature_by_an_unknown_key_is_dnskey_missing() -> None:
    other_private, other_keys = _keys()
    rrset = _a()
    sigs = _sign(rrset, private=other_private, keys=other_keys)
    verdict = verify_rrset(rrset, sigs, ZONE, KEYS, NOW, CryptoBudget())
    assert verdict.security is Security.BOGUS and verdict.ede == Ede.DNSKEY_MISSING


def test_wildcard_expansion_is_reported() -> None:
    wildcard = _a("*.w.example.")
    sigs = _sign(wildcard)
    expanded = _a("host.w.example.")
    expanded_sigs = dns.rrset.RRset(
        expanded.name, dns.rdataclass.IN, dns.rdatatype.RRSIG, dns.rdatatype.A
    )
    expanded_sigs.add(sigs[0], 300)
    verdict = verify_rrset(expanded, expanded_sigs, ZONE, KEYS, NOW, CryptoBudget())
    assert verdict.security is Security.SECURE
    assert verdict.wildcard == dns.name.from_text("*.w.example.")


def test_the_signature_budget_stops_keytrap() -> None:
    rrset = _a()
    sigs = _sign(rrset)
    budget = CryptoBudget(remaining=0)
    verdict = verify_rrset(rrset, sigs, ZONE, KEYS, NOW, budget)
    assert verdict.security is Security.BOGUS and "limit" in verdict.reason


def test_dnskeys_are_trusted_through_a_matching_ds_only() -> None:
    keysigs = _sign(KEYS)
    ds = dns.rrset.RRset(ZONE, dns.rdataclass.IN, dns.rdatatype.DS)
    ds.add(dns.dnssec.make_ds(ZONE, KEYS[0], "SHA256"), 3600)
    good = verify_dnskeys(KEYS, keysigs, ZONE, NOW, CryptoBudget(), ds_set=ds)
    assert good.security is Security.SECURE
    _, other = _keys()
    wrong = dns.rrset.RRset(ZONE, dns.rdataclass.IN, dns.rdatatype.DS)
    wrong.add(dns.dnssec.make_ds(ZONE, other[0], "SHA256"), 3600)
    bad = verify_dnskeys(KEYS, keysigs, ZONE, NOW, CryptoBudget(), ds_set=wrong)
    assert bad.security is Security.BOGUS and bad.ede == Ede.DNSKEY_MISSING


def test_a_ds_with_an_unknown_digest_makes_the_zone_insecure() -> None:
    ds_text = dns.dnssec.make_ds(ZONE, KEYS[0], "SHA256").to_text().split()
    ds_text[2] = "200"  # an unassigned digest type
    ds = dns.rrset.from_text(ZONE, 3600, "IN", "DS", " ".join(ds_text))
    verdict = verify_dnskeys(KEYS, _sign(KEYS), ZONE, NOW, CryptoBudget(), ds_set=ds)
    assert verdict.security is Security.INSECURE


def test_anchors_parse_and_find_the_closest() -> None:
    anchors = TrustAnchors.iana_root()
    assert anchors.closest(dns.name.from_text("www.example.")) == dns.name.root
    anchors.add_text([". 3600 IN DS 1 8 2 " + "00" * 32, "example. DNSKEY 257 3 13 AAAA"])
    assert anchors.closest(dns.name.from_text("www.example.")) == ZONE
    anchors.add_insecure(dns.name.from_text("lab.example."))
    assert anchors.closest(dns.name.from_text("a.lab.example.")) is None
    try:
        anchors.add_text(["example. 3600 IN A 192.0.2.1"], source="cfg")
    except AnchorError as error:
        assert "cfg:1" in str(error) and "DS or DNSKEY" in str(error)
    else:
        raise AssertionError("an A record was taken as a trust anchor")

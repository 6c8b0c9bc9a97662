"""Denial of existence proofs against real NSEC and NSEC3 chains of a small signed zone.

The NSEC chain comes from `dns.dnssec.sign_zone`; dnspython cannot sign with NSEC3, so the
NSEC3 chain (RFC 5155 §7.1) is built here from `dns.dnssec.nsec3_hash` over the zone's
names and empty non-terminals, each NSEC3 RRset signed with the same key. Signatures are
never checked by the module under test: they are here so replies look like real ones.
"""

from __future__ import annotations

import base64
from functools import cache

import dns.dnssec
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.NSEC3
import dns.rrset
import dns.zone
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonproof.resolver.denial import (
    MAX_NSEC3_ITERATIONS,
    Denial,
    DenialStatus,
    HashBudget,
    prove_no_ds,
    prove_nodata,
    prove_nxdomain,
    prove_wildcard_answer,
)

SECURE = DenialStatus.SECURE
INSECURE = DenialStatus.INSECURE
BOGUS = DenialStatus.BOGUS

A = dns.rdatatype.A
MX = dns.rdatatype.MX
DS = dns.rdatatype.DS
TXT = dns.rdatatype.TXT
NSEC = dns.rdatatype.NSEC
NSEC3 = dns.rdatatype.NSEC3
RRSIG = dns.rdatatype.RRSIG

DS_HEX = "ab" * 32
ZONE_TEXT = f"""
$TTL 300
@ SOA ns1 hostmaster 1 7200 3600 1209600 300
@ NS ns1
ns1 A 192.0.2.1
a A 192.0.2.2
b A 192.0.2.3
b TXT "b"
c CNAME a
dn DNAME other.
*.w A 192.0.2.4
deleg NS ns.other.
secure NS ns.other.
secure DS 12345 15 2 {DS_HEX}
x.y A 192.0.2.5
"""
CHILD_TEXT = """
$TTL 300
@ SOA ns hostmaster 1 7200 3600 1209600 300
@ NS ns
ns A 192.0.2.9
"""

KEY = ed25519.Ed25519PrivateKey.generate()
DNSKEY = dns.dnssec.make_dnskey(KEY.public_key(), dns.dnssec.Algorithm.ED25519, flags=257)


def n(text: str) -> dns.name.Name:
    return dns.name.from_text(text)


EXAMPLE = n("example.")
CUTS = [n("deleg.example."), n("secure.example."), n("dn.example.")]


def load(text: str, origin: str) -> dns.zone.Zone:
    return dns.zone.from_text(text, origin=origin, relativize=False)


def sign(rrset: dns.rrset.RRset, signer: dns.name.Name) -> dns.rrset.RRset:
    rrsig = dns.dnssec.sign(rrset, KEY, signer, DNSKEY, lifetime=3600)
    return dns.rrset.from_rdata(rrset.name, rrset.ttl, rrsig)


@cache
def nsec_chain(text: str = ZONE_TEXT, origin: str = "example.") -> tuple[dns.rrset.RRset, ...]:
    """The NSEC RRsets of the zone signed by dnspython, each followed by its RRSIG RRset."""
    zone = load(text, origin)
    dns.dnssec.sign_zone(zone, keys=[(KEY, DNSKEY)], lifetime=3600)
    out = []
    for name, node in sorted(zone.nodes.items()):
        nsec = node.get_rdataset(dns.rdataclass.IN, NSEC)
        if nsec is None:
            continue
        out.append(dns.rrset.from_rdata(name, nsec.ttl, *nsec))
        sigs = node.get_rdataset(dns.rdataclass.IN, RRSIG, NSEC)
        out.append(dns.rrset.from_rdata(name, sigs.ttl, *sigs))
    return tuple(out)


def nsecs_only(rrsets) -> list[dns.rrset.RRset]:
    return [rrset for rrset in rrsets if rrset.rdtype == NSEC]


def soa(origin: dns.name.Name = EXAMPLE) -> dns.rrset.RRset:
    return dns.rrset.from_text(
        origin, 300, "IN", "SOA", "ns1.example. hostmaster.example. 1 7200 3600 1209600 300"
    )


def reply(*nsecs: dns.rrset.RRset, origin: dns.name.Name = EXAMPLE) -> list[dns.rrset.RRset]:
    """An authority section: SOA, then each denial RRset with its RRSIG."""
    out = [soa(origin), sign(soa(origin), origin)]
    for rrset in nsecs:
        out += [rrset, sign(rrset, origin)]
    return out


def nsec_at(owner: str) -> dns.rrset.RRset:
    return next(r for r in nsecs_only(nsec_chain()) if r.name == n(owner))


def nsec_covering(name: str) -> dns.rrset.RRset:
    """Test oracle: the NSEC of the chain whose span holds `name` (not matching it)."""
    target = n(name)
    for rrset in nsecs_only(nsec_chain()):
        owner, following = rrset.name, rrset[0].next
        if owner < target < following or (following == EXAMPLE and target > owner):
            return rrset
    raise AssertionError(f"nothing covers {name}")


# --- NSEC3 chain helper (RFC 5155 §7.1) -----------------------------------------------


def digest(name: dns.name.Name, iterations: int = 0, salt: bytes = b"") -> bytes:
    return base64.b32hexdecode(dns.dnssec.nsec3_hash(name, salt, iterations, 1))


def nsec3_record(
    owner_hash: bytes,
    next_hash: bytes,
    types,
    *,
    origin: dns.name.Name = EXAMPLE,
    flags: int = 0,
    iterations: int = 0,
    salt: bytes = b"",
    algorithm: int = 1,
) -> dns.rrset.RRset:
    label = base64.b32hexencode(owner_hash).decode().lower()
    rdata = dns.rdtypes.ANY.NSEC3.NSEC3(
        dns.rdataclass.IN,
        NSEC3,
        algorithm,
        flags,
        iterations,
        salt,
        next_hash,
        dns.rdtypes.ANY.NSEC3.Bitmap.from_rdtypes(sorted(types)),
    )
    return dns.rrset.from_rdata(dns.name.Name([label.encode()]).concatenate(origin), 300, rdata)


@cache
def nsec3_chain(
    text: str = ZONE_TEXT,
    origin: str = "example.",
    *,
    optout: bool = False,
    iterations: int = 0,
    salt: bytes = b"",
) -> tuple[dns.rrset.RRset, ...]:
    """NSEC3 RRsets for every authoritative name, delegation and empty non-terminal; with
    `optout`, unsigned delegations are left out and every record has the opt-out flag."""
    zone = load(text, origin)
    apex = zone.origin
    cuts = [name for name in zone.nodes if name != apex and zone.get_rdataset(name, "NS")]
    owners: dict[dns.name.Name, set[int]] = {}
    for name, node in zone.nodes.items():
        if any(name != cut and name.is_subdomain(cut) for cut in cuts):
            continue
        types = {rdataset.rdtype for rdataset in node}
        if name in cuts:
            if optout and DS not in types:
                continue
            types &= {dns.rdatatype.NS, DS}
            if DS in types:
                types.add(RRSIG)
        else:
            types.add(RRSIG)
        if name == apex:
            types |= {dns.rdatatype.DNSKEY, dns.rdatatype.NSEC3PARAM}
        owners[name] = types
        while name != apex:
            name = name.parent()
            owners.setdefault(name, set())
    hashed = sorted((digest(name, iterations, salt), types) for name, types in owners.items())
    out = []
    for index, (owner_hash, types) in enumerate(hashed):
        next_hash = hashed[(index + 1) % len(hashed)][0]
        rrset = nsec3_record(
            owner_hash,
            next_hash,
            types,
            origin=apex,
            flags=1 if optout else 0,
            iterations=iterations,
            salt=salt,
        )
        out += [rrset, sign(rrset, apex)]
    return tuple(out)


def nsec3s_only(rrsets) -> list[dns.rrset.RRset]:
    return [rrset for rrset in rrsets if rrset.rdtype == NSEC3]


def nsec3_matching(name: str, chain=None) -> dns.rrset.RRset:
    wanted = base64.b32hexencode(digest(n(name))).decode().lower()
    for rrset in nsec3s_only(chain or nsec3_chain()):
        if rrset.name.labels[0].decode().lower() == wanted:
            return rrset
    raise AssertionError(f"nothing matches {name}")


def nsec3_covering(name: str, chain=None) -> dns.rrset.RRset:
    target = digest(n(name))
    for rrset in nsec3s_only(chain or nsec3_chain()):
        owner = base64.b32hexdecode(rrset.name.labels[0].upper())
        following = rrset[0].next
        if owner < target < following or (following <= owner and not following <= target <= owner):
            return rrset
    raise AssertionError(f"nothing covers {name}")


def assert_status(denial: Denial, status: DenialStatus, *words: str) -> None:
    assert denial.status is status, denial
    for word in words:
        assert word in denial.reason, denial


# --- NSEC ------------------------------------------------------------------------------


def test_nsec_nxdomain_with_whole_chain_is_secure():
    denial = prove_nxdomain(n("nope.example."), EXAMPLE, list(nsec_chain()))
    assert_status(denial, SECURE)
    assert denial.hashes == 0


def test_nsec_nxdomain_with_the_two_records_a_server_sends():
    rrsets = reply(nsec_covering("bb.example."), nsec_covering("*.example."))
    assert nsec_covering("bb.example.") != nsec_covering("*.example.")
    assert_status(prove_nxdomain(n("bb.example."), EXAMPLE, rrsets), SECURE)


def test_nsec_nxdomain_without_the_wildcard_nsec_is_bogus():
    rrsets = reply(nsec_covering("bb.example."))
    assert_status(prove_nxdomain(n("bb.example."), EXAMPLE, rrsets), BOGUS, "*.example.")


def test_nsec_nxdomain_with_only_the_wildcard_nsec_is_bogus():
    rrsets = reply(nsec_covering("*.example."))
    assert_status(prove_nxdomain(n("bb.example."), EXAMPLE, rrsets), BOGUS, "no NSEC covers")


def test_nsec_nxdomain_wildcard_at_the_derived_closest_encloser():
    # foo.x.y.example: closest encloser x.y.example, so *.x.y.example must be denied,
    # and the NSEC x.y.example -> example. covers both.
    rrsets = reply(nsec_covering("foo.x.y.example."))
    assert_status(prove_nxdomain(n("foo.x.y.example."), EXAMPLE, rrsets), SECURE, "*.x.y.example.")


def test_nsec_nxdomain_is_bogus_where_the_wildcard_matches():
    denial = prove_nxdomain(n("foo.w.example."), EXAMPLE, list(nsec_chain()))
    assert_status(denial, BOGUS, "*.w.example.")


def test_nsec_from_another_zone_is_ignored():
    other = nsec_chain(ZONE_TEXT.replace("other.", "elsewhere."), "example.org.")
    denial = prove_nxdomain(n("nope.example."), EXAMPLE, list(other))
    assert_status(denial, BOGUS, "no NSEC")
    denial = prove_nxdomain(n("nope.example.org."), n("example.org."), list(nsec_chain()))
    assert_status(denial, BOGUS, "no NSEC")


def test_qname_outside_the_zone_is_bogus():
    denial = prove_nxdomain(n("nope.example.net."), EXAMPLE, list(nsec_chain()))
    assert_status(denial, BOGUS, "not in zone")


def test_nsec_below_a_delegation_or_dname_is_bogus():
    chain = list(nsec_chain())
    assert_status(prove_nxdomain(n("x.deleg.example."), EXAMPLE, chain), BOGUS, "delegation")
    assert_status(prove_nxdomain(n("x.dn.example."), EXAMPLE, chain), BOGUS, "DNAME")
    assert_status(prove_nodata(n("x.secure.example."), A, EXAMPLE, chain), BOGUS, "delegation")
    # Only the NSEC at the cut, as a forger replaying it would send.
    rrsets = reply(nsec_at("deleg.example."), nsec_at("example."))
    assert_status(prove_nxdomain(n("zz.deleg.example."), EXAMPLE, rrsets), BOGUS)


def test_nsec_empty_non_terminal_is_nodata_not_nxdomain():
    chain = list(nsec_chain())
    for ent in ("y.example.", "w.example."):
        assert_status(prove_nodata(n(ent), A, EXAMPLE, chain), SECURE, "empty non-terminal")
        assert_status(prove_nxdomain(n(ent), EXAMPLE, chain), BOGUS)


def test_nsec_nodata_bitmap():
    chain = list(nsec_chain())
    assert_status(prove_nodata(n("a.example."), MX, EXAMPLE, chain), SECURE)
    assert_status(prove_nodata(n("a.example."), A, EXAMPLE, chain), BOGUS, "lists type A")
    assert_status(prove_nodata(n("b.example."), TXT, EXAMPLE, chain), BOGUS, "TXT")
    assert_status(prove_nodata(n("c.example."), A, EXAMPLE, chain), BOGUS, "CNAME")
    assert_status(prove_nodata(n("nope.example."), A, EXAMPLE, chain), BOGUS)


def test_nsec_at_a_delegation_cannot_prove_nodata_for_other_types():
    rrsets = reply(nsec_at("deleg.example."))
    assert_status(prove_nodata(n("deleg.example."), A, EXAMPLE, rrsets), BOGUS, "delegation")
    assert_status(prove_nodata(n("deleg.example."), DS, EXAMPLE, rrsets), SECURE)


def test_nsec_no_ds():
    assert_status(
        prove_no_ds(n("deleg.example."), EXAMPLE, reply(nsec_at("deleg.example."))), SECURE
    )
    denial = prove_no_ds(n("secure.example."), EXAMPLE, reply(nsec_at("secure.example.")))
    assert_status(denial, BOGUS, "DS")
    denial = prove_no_ds(n("a.example."), EXAMPLE, reply(nsec_at("a.example.")))
    assert_status(denial, BOGUS, "not a delegation")
    denial = prove_no_ds(n("nope.example."), EXAMPLE, list(nsec_chain()))
    assert_status(denial, BOGUS, "no NSEC matches")


def test_nsec_from_the_child_apex_cannot_deny_ds():
    child = nsec_chain(CHILD_TEXT, "deleg.example.")
    apex = next(r for r in nsecs_only(child) if r.name == n("deleg.example."))
    rrsets = reply(apex)
    assert_status(prove_no_ds(n("deleg.example."), EXAMPLE, rrsets), BOGUS, "apex")
    assert_status(prove_nodata(n("deleg.example."), DS, EXAMPLE, rrsets), BOGUS, "apex")


def test_nsec_wildcard_answer():
    chain = list(nsec_chain())
    wildcard = n("*.w.example.")
    assert_status(prove_wildcard_answer(n("foo.w.example."), wildcard, EXAMPLE, chain), SECURE)
    rrsets = reply(nsec_covering("bar.foo.w.example."))
    denial = prove_wildcard_answer(n("bar.foo.w.example."), wildcard, EXAMPLE, rrsets)
    assert_status(denial, SECURE)
    # A wildcard that is not the closest one, or a name that exists.
    denial = prove_wildcard_answer(n("foo.w.example."), n("*.example."), EXAMPLE, chain)
    assert_status(denial, BOGUS, "closest encloser w.example.")
    denial = prove_wildcard_answer(n("a.example."), n("*.example."), EXAMPLE, chain)
    assert_status(denial, BOGUS, "no NSEC covers a.example.")
    denial = prove_wildcard_answer(n("foo.w.example."), n("w.example."), EXAMPLE, chain)
    assert_status(denial, BOGUS, "not a wildcard")


def test_nsec_wildcard_nodata():
    chain = list(nsec_chain())
    assert_status(prove_nodata(n("foo.w.example."), MX, EXAMPLE, chain), SECURE, "wildcard")
    denial = prove_nodata(n("foo.w.example."), A, EXAMPLE, chain)
    assert_status(denial, BOGUS, "lists type A")
    rrsets = reply(nsec_covering("bb.example."))
    assert_status(prove_nodata(n("bb.example."), A, EXAMPLE, rrsets), BOGUS, "*.example.")


def test_nsec_names_in_mixed_case():
    upper = []
    for rrset in nsecs_only(nsec_chain()):
        rdata = rrset[0].replace(next=n(rrset[0].next.to_text().upper()))
        upper.append(dns.rrset.from_rdata(n(rrset.name.to_text().upper()), 300, rdata))
    assert_status(prove_nxdomain(n("NoPe.ExAmPlE."), n("EXAMPLE."), upper), SECURE)
    assert_status(prove_nodata(n("A.example."), MX, EXAMPLE, upper), SECURE)
    assert_status(prove_no_ds(n("Deleg.Example."), EXAMPLE, upper), SECURE)


def test_no_denial_records_at_all_is_bogus():
    denial = prove_nxdomain(n("nope.example."), EXAMPLE, [soa(), sign(soa(), EXAMPLE)])
    assert_status(denial, BOGUS, "no NSEC")


# --- NSEC3 -----------------------------------------------------------------------------


def test_nsec3_nxdomain_with_whole_chain_is_secure():
    budget = HashBudget()
    before = budget.remaining
    denial = prove_nxdomain(n("nope.example."), EXAMPLE, list(nsec3_chain()), budget)
    assert_status(denial, SECURE)
    # nope.example (no match), example (match, the closest encloser), *.example.
    assert denial.hashes == 3
    assert budget.remaining == before - 3


def nxdomain_records(qname: str) -> tuple[dns.rrset.RRset, dns.rrset.RRset, dns.rrset.RRset]:
    """The closest encloser, next closer and wildcard NSEC3s for a name one label below
    the apex, picked so the three are distinct records."""
    return (
        nsec3_matching("example."),
        nsec3_covering(qname),
        nsec3_covering("*.example."),
    )


def distinct_nxdomain_name() -> str:
    for index in range(200):
        qname = f"nope{index}.example."
        records = nxdomain_records(qname)
        if len({r.name for r in records}) == 3:
            return qname
    raise AssertionError("no such name")


def test_nsec3_nxdomain_with_the_three_records_a_server_sends():
    qname = distinct_nxdomain_name()
    rrsets = reply(*nxdomain_records(qname))
    assert_status(prove_nxdomain(n(qname), EXAMPLE, rrsets), SECURE)


def test_nsec3_nxdomain_missing_records_is_bogus():
    qname = distinct_nxdomain_name()
    encloser, next_closer, wildcard = nxdomain_records(qname)
    denial = prove_nxdomain(n(qname), EXAMPLE, reply(encloser, next_closer))
    assert_status(denial, BOGUS, "no NSEC3 covers the wildcard *.example.")
    denial = prove_nxdomain(n(qname), EXAMPLE, reply(encloser, wildcard))
    assert_status(denial, BOGUS, "next closer")
    denial = prove_nxdomain(n(qname), EXAMPLE, reply(next_closer, wildcard))
    assert_status(denial, BOGUS, "no NSEC3 matches any ancestor")


def test_nsec3_nxdomain_is_bogus_for_names_that_exist_or_match_a_wildcard():
    chain = list(nsec3_chain())
    assert_status(prove_nxdomain(n("a.example."), EXAMPLE, chain), BOGUS, "exists")
    assert_status(prove_nxdomain(n("y.example."), EXAMPLE, chain), BOGUS, "exists")
    denial = prove_nxdomain(n("foo.w.example."), EXAMPLE, chain)
    assert_status(denial, BOGUS, "wildcard *.w.example.")


def test_nsec3_closest_encloser_at_a_cut_is_bogus():
    chain = list(nsec3_chain())
    denial = prove_nxdomain(n("x.secure.example."), EXAMPLE, chain)
    assert_status(denial, BOGUS, "delegation point")
    denial = prove_nxdomain(n("x.deleg.example."), EXAMPLE, chain)
    assert_status(denial, BOGUS, "delegation point")
    assert_status(prove_nxdomain(n("x.dn.example."), EXAMPLE, chain), BOGUS, "DNAME")
    denial = prove_nodata(n("x.deleg.example."), A, EXAMPLE, chain)
    assert_status(denial, BOGUS, "delegation point")


def test_nsec3_nodata():
    chain = list(nsec3_chain())
    assert_status(prove_nodata(n("a.example."), MX, EXAMPLE, chain), SECURE)
    assert_status(prove_nodata(n("a.example."), A, EXAMPLE, chain), BOGUS, "lists type A")
    assert_status(prove_nodata(n("c.example."), A, EXAMPLE, chain), BOGUS, "CNAME")
    assert_status(prove_nodata(n("deleg.example."), A, EXAMPLE, chain), BOGUS, "delegation")
    assert_status(prove_nodata(n("deleg.example."), DS, EXAMPLE, chain), SECURE)
    denial = prove_nodata(n("y.example."), A, EXAMPLE, chain)
    assert_status(denial, SECURE, "empty non-terminal")
    denial = prove_nodata(n("nope.example."), A, EXAMPLE, chain)
    assert_status(denial, BOGUS, "not in an opt-out span")


def test_nsec3_wildcard_nodata():
    chain = list(nsec3_chain())
    assert_status(prove_nodata(n("foo.w.example."), MX, EXAMPLE, chain), SECURE, "wildcard")
    denial = prove_nodata(n("foo.w.example."), A, EXAMPLE, chain)
    assert_status(denial, BOGUS, "lists type A")


def test_nsec3_wildcard_answer():
    chain = list(nsec3_chain())
    wildcard = n("*.w.example.")
    rrsets = reply(nsec3_covering("foo.w.example."))
    assert_status(prove_wildcard_answer(n("foo.w.example."), wildcard, EXAMPLE, rrsets), SECURE)
    # Next closer of bar.foo.w.example under *.w.example is foo.w.example.
    denial = prove_wildcard_answer(n("bar.foo.w.example."), wildcard, EXAMPLE, rrsets)
    assert_status(denial, SECURE, "foo.w.example.")
    denial = prove_wildcard_answer(n("foo.w.example."), n("*.example."), EXAMPLE, chain)
    assert_status(denial, BOGUS, "w.example.")
    denial = prove_wildcard_answer(n("foo.w.example."), wildcard, EXAMPLE, reply())
    assert_status(denial, BOGUS)


def test_nsec3_no_ds():
    chain = list(nsec3_chain())
    denial = prove_no_ds(n("deleg.example."), EXAMPLE, reply(nsec3_matching("deleg.example.")))
    assert_status(denial, SECURE)
    assert denial.hashes == 1
    assert_status(prove_no_ds(n("secure.example."), EXAMPLE, chain), BOGUS, "DS")
    assert_status(prove_no_ds(n("a.example."), EXAMPLE, chain), BOGUS, "not a delegation")
    assert_status(prove_no_ds(n("nope.example."), EXAMPLE, chain), BOGUS, "not opt-out")


def test_nsec3_from_the_child_apex_cannot_deny_ds():
    # The child's own chain is owned under deleg.example., not example.: ignored.
    child = list(nsec3_chain(CHILD_TEXT, "deleg.example."))
    assert_status(prove_no_ds(n("deleg.example."), EXAMPLE, child), BOGUS, "no NSEC")
    # A parent-side record with the SOA bit is the apex of a zone, not a delegation.
    apex_like = nsec3_record(
        digest(n("deleg.example.")),
        digest(n("a.example.")),
        {dns.rdatatype.NS, dns.rdatatype.SOA, RRSIG},
    )
    assert_status(prove_no_ds(n("deleg.example."), EXAMPLE, reply(apex_like)), BOGUS, "apex")
    denial = prove_nodata(n("deleg.example."), DS, EXAMPLE, reply(apex_like))
    assert_status(denial, BOGUS, "apex")


def test_nsec3_opt_out_is_insecure():
    chain = list(nsec3_chain(optout=True))
    denial = prove_no_ds(n("deleg.example."), EXAMPLE, chain)
    assert_status(denial, INSECURE, "opt-out covers the next closer name deleg.example.")
    assert_status(prove_nodata(n("deleg.example."), DS, EXAMPLE, chain), INSECURE, "opt-out")
    assert_status(prove_nxdomain(n("nope.example."), EXAMPLE, chain), INSECURE, "opt-out")
    assert_status(prove_nxdomain(n("x.deleg.example."), EXAMPLE, chain), INSECURE, "opt-out")
    # Signed delegations and existing names are still decided by their own records.
    assert_status(prove_no_ds(n("secure.example."), EXAMPLE, chain), BOGUS, "DS")
    assert_status(prove_nodata(n("a.example."), MX, EXAMPLE, chain), SECURE)
    wildcard = n("*.w.example.")
    denial = prove_wildcard_answer(n("foo.w.example."), wildcard, EXAMPLE, chain)
    assert_status(denial, INSECURE, "opt-out")


def test_nsec3_iterations_above_the_limit_are_insecure():
    chain = list(nsec3_chain(iterations=200))
    budget = HashBudget()
    denial = prove_nxdomain(n("nope.example."), EXAMPLE, chain, budget)
    assert_status(denial, INSECURE, "200", str(MAX_NSEC3_ITERATIONS))
    assert denial.hashes == 0
    assert budget.remaining == HashBudget().remaining


def test_nsec3_with_salt_and_iterations_below_the_limit():
    chain = list(nsec3_chain(iterations=MAX_NSEC3_ITERATIONS, salt=b"\xab\xcd"))
    assert_status(prove_nxdomain(n("nope.example."), EXAMPLE, chain), SECURE)
    assert_status(prove_nodata(n("a.example."), MX, EXAMPLE, chain), SECURE)


def test_nsec3_hash_budget_exhausted_is_bogus():
    chain = list(nsec3_chain())
    budget = HashBudget(remaining=2)
    denial = prove_nxdomain(n("nope.example."), EXAMPLE, chain, budget)
    assert_status(denial, BOGUS, "NSEC3 hash limit reached")
    assert denial.hashes == 2
    assert budget.remaining == 0
    # The budget is shared across the proofs of one query: the next one fails at once.
    denial = prove_nodata(n("a.example."), MX, EXAMPLE, chain, budget)
    assert_status(denial, BOGUS, "limit")
    assert denial.hashes == 0


def test_nsec3_deep_names_are_capped_by_the_default_budget():
    qname = n(".".join(["a"] * 120) + ".nope.example.")
    denial = prove_nxdomain(qname, EXAMPLE, list(nsec3_chain()))
    assert_status(denial, SECURE)
    denial = prove_nxdomain(qname, EXAMPLE, list(nsec3_chain()), HashBudget(remaining=100))
    assert_status(denial, BOGUS, "limit")
    assert denial.hashes == 100


def test_nsec3_mixed_parameters_are_bogus():
    plain = nsec3s_only(nsec3_chain())
    salted = nsec3s_only(nsec3_chain(salt=b"\x01"))
    denial = prove_nxdomain(n("nope.example."), EXAMPLE, plain + salted[:1])
    assert_status(denial, BOGUS, "mixed parameters")
    more = nsec3s_only(nsec3_chain(iterations=1))
    denial = prove_nxdomain(n("nope.example."), EXAMPLE, plain + more[:1])
    assert_status(denial, BOGUS, "mixed parameters")


def test_nsec3_with_unknown_algorithm_or_flags_is_ignored():
    chain = list(nsec3_chain())
    odd = [
        nsec3_record(b"\x01" * 20, b"\x02" * 20, {A}, algorithm=2, salt=b"\x99"),
        nsec3_record(b"\x03" * 20, b"\x04" * 20, {A}, flags=0x80, iterations=7),
    ]
    assert_status(prove_nxdomain(n("nope.example."), EXAMPLE, chain + odd), SECURE)
    assert_status(prove_nxdomain(n("nope.example."), EXAMPLE, odd), BOGUS, "no NSEC")


def test_nsec3_of_another_zone_is_ignored():
    denial = prove_nxdomain(n("nope.example.org."), n("example.org."), list(nsec3_chain()))
    assert_status(denial, BOGUS, "no NSEC")


def test_nsec3_names_in_mixed_case():
    upper = [
        dns.rrset.from_rdata(n(rrset.name.to_text().upper()), 300, rrset[0])
        for rrset in nsec3s_only(nsec3_chain())
    ]
    assert_status(prove_nxdomain(n("NoPe.ExAmPlE."), n("EXAMPLE."), upper), SECURE)
    assert_status(prove_nodata(n("A.Example."), MX, EXAMPLE, upper), SECURE)


def test_nsec_and_nsec3_together():
    both = list(nsec_chain()) + list(nsec3_chain())
    assert_status(prove_nxdomain(n("nope.example."), EXAMPLE, both), SECURE)
    # NSEC alone cannot prove it (wildcard record missing); the NSEC3 chain can.
    rrsets = reply(nsec_covering("bb.example.")) + list(nsec3_chain())
    denial = prove_nxdomain(n("bb.example."), EXAMPLE, rrsets)
    assert_status(denial, SECURE, "NSEC3")


# --- properties --------------------------------------------------------------------------


def zone_names() -> set[dns.name.Name]:
    """Every name that exists in the zone: owners and empty non-terminals."""
    names = set()
    for name in load(ZONE_TEXT, "example."):
        while True:
            names.add(name)
            if name == EXAMPLE:
                break
            name = name.parent()
    return names


EXISTING = zone_names()


def closest_encloser(name: dns.name.Name) -> dns.name.Name | None:
    """The deepest existing ancestor of an absent `name` in the parent zone; None when
    the name exists or is at or below a cut (the zone does not answer for it)."""
    if name in EXISTING or any(name.is_subdomain(cut) for cut in CUTS):
        return None
    encloser = name.parent()
    while encloser not in EXISTING:
        encloser = encloser.parent()
    return encloser


def nxdomain_is_right(name: dns.name.Name) -> bool:
    """Is NXDOMAIN the right answer for `name` in the parent zone?"""
    encloser = closest_encloser(name)
    return encloser is not None and n(f"*.{encloser}") not in EXISTING


@pytest.mark.parametrize("name", sorted(EXISTING), ids=str)
def test_every_existing_name_has_no_nxdomain_proof(name):
    assert_status(prove_nxdomain(name, EXAMPLE, list(nsec_chain())), BOGUS)
    assert_status(prove_nxdomain(name, EXAMPLE, list(nsec3_chain())), BOGUS)


LABEL = st.one_of(
    st.sampled_from(["a", "B", "c", "w", "Y", "x", "deleg", "secure", "dn", "ns1", "*", "zz"]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC0123456789-", min_size=1, max_size=10),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(LABEL, min_size=1, max_size=4))
def test_random_names_nxdomain_proof_matches_the_zone(labels):
    name = dns.name.Name([label.encode() for label in labels]).concatenate(EXAMPLE)
    expected = SECURE if nxdomain_is_right(name) else BOGUS
    assert prove_nxdomain(name, EXAMPLE, list(nsec_chain())).status is expected
    assert prove_nxdomain(name, EXAMPLE, list(nsec3_chain())).status is expected

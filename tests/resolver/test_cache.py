"""The ranked RRset cache."""

from __future__ import annotations

import dns.name
import dns.rdatatype
import dns.rrset

from poisonproof.resolver.cache import Cache, Rank
from tests.resolver.inprocess import ManualClock


def a(name: str, address: str, ttl: int = 300) -> dns.rrset.RRset:
    return dns.rrset.from_text(name, ttl, "IN", "A", address)


def soa(zone: str, ttl: int, minimum: int) -> dns.rrset.RRset:
    return dns.rrset.from_text(zone, ttl, "IN", "SOA", f"ns.{zone} h.{zone} 1 2 3 4 {minimum}")


def test_ranks_protect_authoritative_data():
    cache = Cache(ManualClock())
    www = dns.name.from_text("www.x.")
    assert cache.put(a("www.x.", "192.0.2.1"), Rank.ANSWER_AUTH)
    assert not cache.put(a("www.x.", "6.6.6.6"), Rank.GLUE)
    assert not cache.put(a("www.x.", "6.6.6.6"), Rank.AUTHORITY_AUTH)
    assert cache.get(www, dns.rdatatype.A)[0].address == "192.0.2.1"
    assert cache.refused_by_rank == 2
    assert cache.put(a("www.x.", "192.0.2.2"), Rank.ANSWER_AUTH)  # same rank refreshes


def test_glue_is_not_answerable_but_serves_delegations():
    cache = Cache(ManualClock())
    cache.put(a("ns.x.", "192.0.2.53"), Rank.GLUE)
    name = dns.name.from_text("ns.x.")
    assert cache.get(name, dns.rdatatype.A) is None
    assert cache.addresses(name, (dns.rdatatype.A,)) == ["192.0.2.53"]
    unranked = Cache(ManualClock(), ranked=False)
    unranked.put(a("ns.x.", "192.0.2.53"), Rank.GLUE)
    assert unranked.get(name, dns.rdatatype.A) is not None  # pre-2008 caches answer from glue


def test_ttl_ages_expires_and_is_clamped():
    clock = ManualClock()
    cache = Cache(clock, min_ttl=60, max_ttl=1000)
    cache.put(a("short.x.", "192.0.2.1", ttl=5), Rank.ANSWER_AUTH)
    cache.put(a("long.x.", "192.0.2.1", ttl=99999), Rank.ANSWER_AUTH)
    assert cache.get(dns.name.from_text("short.x."), 1).ttl == 60
    assert cache.get(dns.name.from_text("long.x."), 1).ttl == 1000
    clock.now += 59.5
    assert cache.get(dns.name.from_text("short.x."), 1).ttl == 0
    clock.now += 1
    assert cache.get(dns.name.from_text("short.x."), 1) is None


def test_negative_entries_use_the_soa_minimum_and_cover_descendants():
    clock = ManualClock()
    cache = Cache(clock)
    cache.put_negative(
        dns.name.from_text("gone.x."), None, soa("x.", 3600, 30), Rank.AUTHORITY_AUTH
    )
    cache.put_negative(
        dns.name.from_text("www.x."), dns.rdatatype.AAAA, soa("x.", 20, 300), Rank.AUTHORITY_AUTH
    )
    below = cache.get_negative(dns.name.from_text("a.b.gone.x."), dns.rdatatype.A)
    assert below.nxdomain and below.ttl == 30 and below.soa.ttl == 30
    nodata = cache.get_negative(dns.name.from_text("www.x."), dns.rdatatype.AAAA)
    assert not nodata.nxdomain and nodata.ttl == 20
    assert cache.get_negative(dns.name.from_text("www.x."), dns.rdatatype.A) is None
    clock.now += 31
    assert cache.get_negative(dns.name.from_text("gone.x."), dns.rdatatype.A) is None


def test_lru_bound():
    cache = Cache(ManualClock(), max_entries=100)
    for i in range(250):
        cache.put(a(f"n{i}.x.", "192.0.2.1"), Rank.ANSWER_AUTH)
        cache.get(dns.name.from_text("n0.x."), 1)  # keep touching the first one
    assert len(cache) == 100 and cache.evictions == 150
    assert cache.get(dns.name.from_text("n0.x."), 1) is not None
    assert cache.get(dns.name.from_text("n1.x."), 1) is None


def test_closest_delegation():
    cache = Cache(ManualClock())
    cache.put(dns.rrset.from_text("x.", 300, "IN", "NS", "ns.x."), Rank.AUTHORITY_NONAUTH)
    cache.put(dns.rrset.from_text("sub.x.", 300, "IN", "NS", "ns.sub.x."), Rank.AUTHORITY_NONAUTH)
    assert cache.closest_delegation(dns.name.from_text("a.b.sub.x.")).name.to_text() == "sub.x."
    assert cache.closest_delegation(dns.name.from_text("other.x.")).name.to_text() == "x."
    assert cache.closest_delegation(dns.name.from_text("y.")) is None


def test_forget_negative_drops_only_a_negative_entry():
    cache = Cache(ManualClock())
    gone = dns.name.from_text("gone.x.")
    www = dns.name.from_text("www.x.")
    cache.put_negative(gone, dns.rdatatype.TXT, soa("x.", 300, 300), Rank.AUTHORITY_AUTH)
    cache.put_negative(gone, None, soa("x.", 300, 300), Rank.AUTHORITY_AUTH)
    cache.put(a("www.x.", "192.0.2.1"), Rank.ANSWER_AUTH)
    writes = cache.writes
    cache.forget_negative(gone, dns.rdatatype.TXT)
    assert not cache.known_no_data(gone, dns.rdatatype.TXT)
    assert cache.get_negative(gone, dns.rdatatype.TXT).nxdomain  # the NXDOMAIN is its own entry
    cache.forget_negative(gone, None)
    assert cache.get_negative(gone, dns.rdatatype.TXT) is None
    cache.forget_negative(www, dns.rdatatype.A)  # a positive RRset under that key stays
    assert cache.get(www, dns.rdatatype.A) is not None
    assert cache.writes == writes + 2  # a change counts; nothing to forget does not

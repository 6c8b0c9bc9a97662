"""Cache files: what is dumped comes back with its rank, validation state and expiry."""

from __future__ import annotations

import dns.name
import dns.rdatatype
import dns.rrset
import pytest

from poisonproof.resolver.cache import Cache, Rank
from poisonproof.resolver.cache_file import CacheFileError, dump, load
from poisonproof.resolver.validator import Security
from tests.resolver.inprocess import ManualClock


def test_round_trip_keeps_data_ranks_security_negatives_and_remaining_ttl(tmp_path):
    clock = ManualClock()
    cache = Cache(clock)
    www = dns.name.from_text("www.Bank.example.")
    cache.put(dns.rrset.from_text(www, 300, "IN", "A", "192.0.2.80"), Rank.ANSWER_AUTH)
    cache.mark(www, dns.rdatatype.A, Security.SECURE)
    cache.put(dns.rrset.from_text("ns.example.", 600, "IN", "A", "192.0.2.53"), Rank.GLUE)
    cache.put(
        dns.rrset.from_text("d.example.", 600, "IN", "DNAME", "bank.example."), Rank.ANSWER_AUTH
    )
    soa = dns.rrset.from_text("example.", 900, "IN", "SOA", "ns.example. h.example. 1 2 3 4 120")
    cache.put_negative(dns.name.from_text("nx.example."), None, soa, Rank.AUTHORITY_AUTH)
    cache.put(dns.rrset.from_text("short.example.", 5, "IN", "TXT", '"x y"'), Rank.ANSWER_AUTH)
    path = tmp_path / "cache.jsonl"
    assert dump(cache, path) == len(cache.export())

    clock.now += 100  # the process was down 100 s: the 5 s entry expired meanwhile
    restored = Cache(clock)
    result = load(restored, path)
    assert (result.expired, result.bad_lines) == (1, 0)
    got = restored.get_cached(www, dns.rdatatype.A)
    assert got is not None and got.rrset[0].address == "192.0.2.80"
    assert got.rrset.ttl == 200 and got.security is Security.SECURE
    assert got.rrset.name.to_text() == "www.Bank.example."
    assert restored.rank_of(dns.name.from_text("ns.example."), dns.rdatatype.A) == Rank.GLUE
    negative = restored.get_negative(dns.name.from_text("a.nx.example."), dns.rdatatype.A)
    assert negative is not None and negative.nxdomain and negative.ttl == 20
    assert restored.dname_count == 1
    assert restored.get(dns.name.from_text("short.example."), dns.rdatatype.TXT) is None


def test_damaged_lines_are_skipped_and_foreign_files_refused(tmp_path):
    clock = ManualClock()
    cache = Cache(clock)
    cache.put(dns.rrset.from_text("a.example.", 300, "IN", "A", "192.0.2.1"), Rank.ANSWER_AUTH)
    path = tmp_path / "cache.jsonl"
    dump(cache, path)
    path.write_text(path.read_text() + '{"name": "broken"\n' + '{"name": "x.", "key": 1}\n')
    result = load(Cache(clock), path)
    assert (result.loaded, result.bad_lines) == (1, 2)
    other = tmp_path / "other.txt"
    other.write_text("hello\n")
    with pytest.raises(CacheFileError):
        load(Cache(clock), other)

"""Aggressive use of the validated cache (RFC 8198) against real NSEC and NSEC3 chains.

The chains, the zone and the NXDOMAIN oracle come from `test_denial`: the NSEC chain is
signed by dnspython, the NSEC3 chain is built and signed there (RFC 5155 §7.1).
"""

from __future__ import annotations

import itertools
from functools import cache

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.NSEC
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonproof.resolver.aggressive import DenialCache, Synthesized
from poisonproof.resolver.denial import (
    DenialStatus,
    HashBudget,
    prove_nodata,
    prove_wildcard_answer,
)
from tests.resolver.test_denial import (
    CHILD_TEXT,
    EXAMPLE,
    EXISTING,
    LABEL,
    closest_encloser,
    distinct_nxdomain_name,
    n,
    nsec3_chain,
    nsec3_covering,
    nsec_chain,
    nsec_covering,
    nxdomain_is_right,
    nxdomain_records,
    sign,
    soa,
)

A = dns.rdatatype.A
MX = dns.rdatatype.MX
DS = dns.rdatatype.DS
TXT = dns.rdatatype.TXT
ANY = dns.rdatatype.ANY
NSEC = dns.rdatatype.NSEC
NSEC3 = dns.rdatatype.NSEC3
RRSIG = dns.rdatatype.RRSIG
SOA = dns.rdatatype.SOA

NOW = 1_000_000.0
DELEG = n("deleg.example.")


def with_sigs(chain, *rrsets: dns.rrset.RRset) -> list[dns.rrset.RRset]:
    """Each of `rrsets` followed by its RRSIG RRset from `chain` (record, RRSIG pairs)."""
    sigs = {chain[i].name: chain[i + 1] for i in range(0, len(chain), 2)}
    out = []
    for rrset in rrsets:
        out += [rrset, sigs[rrset.name]]
    return out


def by_owner(chain, owner: str) -> dns.rrset.RRset:
    return next(r for r in chain if r.name == n(owner) and r.rdtype in (NSEC, NSEC3))


def short_soa(origin: dns.name.Name = EXAMPLE) -> dns.rrset.RRset:
    """SOA TTL 300, MINIMUM 60: the negative TTL is 60."""
    return dns.rrset.from_text(
        origin, 300, "IN", "SOA", "ns1.example. hostmaster.example. 1 7200 3600 1209600 60"
    )


def add(cache: DenialCache, records, origin=EXAMPLE, zone_soa=None, now=NOW) -> None:
    zone_soa = zone_soa if zone_soa is not None else soa(origin)
    cache.add(origin, list(records), zone_soa, sign(zone_soa, origin), now)


def a1_reply() -> list[dns.rrset.RRset]:
    """The NSEC records of the NXDOMAIN reply for a1.example.: a -> b covers the name,
    example. -> a covers the wildcard *.example."""
    chain = nsec_chain()
    return with_sigs(chain, by_owner(chain, "a.example."), by_owner(chain, "example."))


def look(cache: DenialCache, name: str, qtype: int = A, now: float = NOW, budget=None):
    return cache.lookup(n(name), qtype, now, budget if budget is not None else HashBudget())


def kinds(answer: Synthesized) -> set[tuple[str, int, int]]:
    return {(r.name.to_text().lower(), r.rdtype, r.covers) for r in answer.records}


def nxdomain(answer: Synthesized | None) -> bool:
    return answer is not None and answer.nxdomain


def nodata(answer: Synthesized | None) -> bool:
    return answer is not None and not answer.nxdomain


# --- NSEC --------------------------------------------------------------------------------


def test_nsec_nxdomain_for_other_names_in_the_same_gap():
    cache = DenialCache()
    add(cache, a1_reply(), zone_soa=short_soa())
    assert len(cache) == 2
    answer = look(cache, "a1.example.")
    assert nxdomain(answer)
    assert answer.zone == EXAMPLE
    assert answer.ttl == 60
    assert answer.soa.rdtype == SOA and answer.soa.ttl == 60
    assert kinds(answer) == {
        ("a.example.", NSEC, 0),
        ("a.example.", RRSIG, NSEC),
        ("example.", NSEC, 0),
        ("example.", RRSIG, NSEC),
        ("example.", RRSIG, SOA),
    }
    assert all(r.ttl == 60 for r in answer.records)
    for name in ("a2.example.", "aa.example.", "A-Z.Example.", "x.a.example.", "0.example."):
        assert nxdomain(look(cache, name, TXT)), name
    assert nxdomain(look(cache, "*.example."))
    # The TTL counts down.
    later = look(cache, "a2.example.", now=NOW + 45)
    assert later.ttl == 15 and later.soa.ttl == 15


def test_nsec_outside_the_gap_or_existing_names_are_not_answered():
    cache = DenialCache()
    add(cache, a1_reply())
    for name in ("bb.example.", "c1.example.", "zz.example.", "a.example.", "b.example."):
        assert look(cache, name) is None, name
    assert look(cache, "a1.example.org.") is None
    assert look(cache, "example.", SOA) is None


def test_nsec_nodata_from_the_matching_nsec():
    cache = DenialCache()
    add(cache, a1_reply())
    answer = look(cache, "a.example.", MX)
    assert nodata(answer)
    assert kinds(answer) == {
        ("a.example.", NSEC, 0),
        ("a.example.", RRSIG, NSEC),
        ("example.", RRSIG, SOA),
    }
    assert nodata(look(cache, "example.", TXT))
    assert look(cache, "a.example.", A) is None
    assert look(cache, "example.", SOA) is None


def test_meta_types_get_nxdomain_but_never_nodata():
    cache = DenialCache()
    add(cache, a1_reply())
    assert nxdomain(look(cache, "a1.example.", ANY))
    assert look(cache, "a.example.", ANY) is None


def test_expiry_after_the_ttl():
    cache = DenialCache()
    add(cache, a1_reply())  # NSEC TTL 300, SOA TTL 300, MINIMUM 300
    answer = look(cache, "a1.example.")
    assert answer.ttl == 300
    assert nxdomain(look(cache, "a1.example.", now=NOW + 299))
    assert look(cache, "a1.example.", now=NOW + answer.ttl + 1) is None
    assert len(cache) == 0


def test_ttl_is_the_minimum_of_record_sigs_and_soa():
    chain = nsec_chain()
    nsec = by_owner(chain, "a.example.").copy()
    nsec.ttl = 30
    records = [nsec, with_sigs(chain, nsec)[1], *with_sigs(chain, by_owner(chain, "example."))]
    cache = DenialCache()
    add(cache, records)
    assert look(cache, "a1.example.").ttl == 30
    assert look(cache, "0.example.").ttl == 300  # only the apex NSEC: TTL 300
    assert look(cache, "a1.example.", now=NOW + 31) is None


def test_records_without_a_signature_by_the_zone_are_not_kept():
    chain = nsec_chain()
    cache = DenialCache()
    add(cache, [by_owner(chain, "a.example."), by_owner(chain, "example.")])
    assert len(cache) == 0
    # Signed by example., offered as records of example.org.
    org = n("example.org.")
    add(cache, a1_reply(), origin=org)
    assert len(cache) == 0
    assert look(cache, "a1.example.") is None


def test_the_soa_must_be_the_zones():
    with pytest.raises(ValueError):
        DenialCache().add(EXAMPLE, a1_reply(), soa(n("example.org.")), None, NOW)


def test_without_soa_signatures_the_answer_has_no_soa_rrsig():
    cache = DenialCache()
    cache.add(EXAMPLE, a1_reply(), soa(), None, NOW)
    answer = look(cache, "a1.example.")
    assert nxdomain(answer)
    assert ("example.", RRSIG, SOA) not in kinds(answer)


def test_nsec_never_answers_at_or_below_a_delegation_except_ds():
    cache = DenialCache()
    add(cache, nsec_chain())
    assert look(cache, "deleg.example.", A) is None
    assert look(cache, "x.deleg.example.", A) is None
    assert look(cache, "x.deleg.example.", DS) is None
    assert look(cache, "secure.example.", DS) is None  # it has one
    assert look(cache, "x.dn.example.", A) is None  # below a DNAME
    answer = look(cache, "deleg.example.", DS)
    assert nodata(answer) and answer.zone == EXAMPLE


def test_nsec_wildcard_and_empty_non_terminal_nodata():
    cache = DenialCache()
    add(cache, nsec_chain())
    assert nodata(look(cache, "foo.w.example.", MX))
    assert look(cache, "foo.w.example.", A) is None
    assert nodata(look(cache, "y.example.", A))
    assert nodata(look(cache, "w.example.", A))


def test_the_deepest_zone_answers_and_ds_goes_to_the_parent():
    cache = DenialCache()
    add(cache, nsec_chain())
    add(cache, nsec_chain(CHILD_TEXT, "deleg.example."), origin=DELEG)
    answer = look(cache, "nope.deleg.example.")
    assert nxdomain(answer) and answer.zone == DELEG
    answer = look(cache, "deleg.example.", MX)
    assert nodata(answer) and answer.zone == DELEG
    answer = look(cache, "deleg.example.", DS)
    assert nodata(answer) and answer.zone == EXAMPLE
    cache.forget_zone(DELEG)
    assert look(cache, "nope.deleg.example.") is None  # the parent shows a delegation
    assert nxdomain(look(cache, "nope.example."))


def test_forget_zone():
    cache = DenialCache()
    add(cache, a1_reply())
    cache.forget_zone(n("Example."))
    assert len(cache) == 0
    assert look(cache, "a1.example.") is None
    add(cache, a1_reply())
    assert nxdomain(look(cache, "a1.example."))


def test_max_records_bound_evicts_the_oldest():
    chain = nsec_chain()
    cache = DenialCache(max_records=3)
    add(cache, chain)  # ten NSECs, in canonical order
    assert len(cache) == 3
    assert nodata(look(cache, "x.y.example.", MX))  # among the last three
    assert look(cache, "a.example.", MX) is None  # evicted
    add(cache, a1_reply())
    assert len(cache) == 3
    assert nxdomain(look(cache, "a1.example."))
    # Re-adding refreshes: the two just added survive two more.
    add(cache, with_sigs(chain, by_owner(chain, "b.example."), by_owner(chain, "c.example.")))
    assert len(cache) == 3
    assert look(cache, "x.y.example.", MX) is None
    assert nodata(look(cache, "b.example.", MX))
    assert look(cache, "a.example.", MX) is None
    assert nodata(look(cache, "example.", MX))


def big_chain(size: int) -> tuple[dns.name.Name, list[dns.rrset.RRset]]:
    """A synthetic NSEC chain apex, n00000 .. n<size-1>, the apex last. One dummy RRSIG
    serves every record: nothing here checks signatures."""
    apex = n("big.")
    owners = [apex] + [n(f"n{i:05d}.big.") for i in range(size)]
    rrsig = dns.rdata.from_text(
        "IN", "RRSIG", "NSEC 15 2 300 20300101000000 20200101000000 1 big. AA=="
    )
    leaf = dns.rdtypes.ANY.NSEC.Bitmap.from_rdtypes([A, RRSIG, NSEC])
    top = dns.rdtypes.ANY.NSEC.Bitmap.from_rdtypes([dns.rdatatype.NS, SOA, RRSIG, NSEC])
    records = []
    for index, owner in enumerate(owners):
        following = owners[(index + 1) % len(owners)]
        windows = top if owner == apex else leaf
        nsec = dns.rdtypes.ANY.NSEC.NSEC(dns.rdataclass.IN, NSEC, following, windows)
        records += [dns.rrset.from_rdata(owner, 300, nsec), dns.rrset.from_rdata(owner, 300, rrsig)]
    return apex, records[2:] + records[:2]


def test_many_records_bisect_and_evict():
    apex, records = big_chain(1000)
    cache = DenialCache(max_records=501)
    add(cache, records, origin=apex)
    assert len(cache) == 501
    for i in range(500, 1000, 7):
        answer = look(cache, f"n{i:05d}x.big.")
        assert nxdomain(answer), i
        assert (f"n{i:05d}.big.", NSEC, 0) in kinds(answer)
    for i in range(0, 499, 7):
        assert look(cache, f"n{i:05d}x.big.") is None, i


# --- NSEC3 -------------------------------------------------------------------------------


def same_span_names(cover: dns.rrset.RRset, count: int) -> list[str]:
    names = (f"r{i}.example." for i in range(3000))
    return list(itertools.islice((x for x in names if nsec3_covering(x) == cover), count))


def test_nsec3_nxdomain_for_other_names_in_the_same_span():
    chain = nsec3_chain()
    qname = distinct_nxdomain_name()
    encloser, cover, wildcard = nxdomain_records(qname)
    cache = DenialCache()
    add(cache, with_sigs(chain, encloser, cover, wildcard))
    assert len(cache) == 3
    others = same_span_names(cover, 5)
    assert len(others) == 5
    for name in [qname, *others]:
        answer = look(cache, name)
        assert nxdomain(answer), name
        names = {r.name for r in answer.records}
        assert names == {encloser.name, cover.name, wildcard.name, EXAMPLE}
        assert sum(r.rdtype == RRSIG for r in answer.records) == 4
    elsewhere = next(
        f"s{i}.example."
        for i in range(3000)
        if nsec3_covering(f"s{i}.example.") not in (cover, wildcard)
    )
    assert look(cache, elsewhere) is None


def test_nsec3_hashes_do_not_grow_with_the_depth_below_the_next_closer():
    chain = nsec3_chain()
    qname = distinct_nxdomain_name()
    cache = DenialCache()
    add(cache, with_sigs(chain, *nxdomain_records(qname)))
    budget = HashBudget()
    deep = ".".join(["a"] * 100) + "." + qname
    assert nxdomain(look(cache, deep, budget=budget))
    assert HashBudget().remaining - budget.remaining <= 6


def test_nsec3_budget_exhaustion_is_no_answer():
    cache = DenialCache()
    add(cache, nsec3_chain())
    budget = HashBudget(remaining=2)
    assert look(cache, "nope.example.", budget=budget) is None
    assert budget.remaining == 0
    assert look(cache, "a.example.", MX, budget=budget) is None
    assert nxdomain(look(cache, "nope.example."))


def test_nsec3_nodata_delegations_and_cuts():
    cache = DenialCache()
    add(cache, nsec3_chain())
    assert nodata(look(cache, "a.example.", MX))
    assert look(cache, "a.example.", A) is None
    assert nodata(look(cache, "y.example.", A))  # empty non-terminal
    assert nodata(look(cache, "foo.w.example.", MX))  # wildcard NODATA
    assert nodata(look(cache, "bar.foo.w.example.", MX))
    assert look(cache, "foo.w.example.", A) is None
    assert nodata(look(cache, "deleg.example.", DS))
    assert look(cache, "deleg.example.", A) is None
    assert look(cache, "x.deleg.example.", A) is None
    assert look(cache, "x.dn.example.", A) is None
    assert look(cache, "c.example.", A) is None  # CNAME


def test_nsec3_opt_out_spans_are_not_used():
    cache = DenialCache()
    add(cache, nsec3_chain(optout=True))
    assert look(cache, "nope.example.") is None
    assert look(cache, "x.deleg.example.") is None
    assert look(cache, "deleg.example.", DS) is None
    assert nodata(look(cache, "a.example.", MX))  # a matching record still proves NODATA


def test_nsec3_above_the_iteration_limit_is_not_kept():
    cache = DenialCache()
    add(cache, nsec3_chain(iterations=200))
    assert len(cache) == 0


def test_nsec3_new_parameters_replace_the_old_chain():
    cache = DenialCache()
    add(cache, nsec3_chain())
    salted = nsec3_chain(salt=b"\x01")
    add(cache, salted[:2])
    assert len(cache) == 1
    add(cache, salted)
    assert nxdomain(look(cache, "nope.example."))
    assert len(cache) == len(salted) // 2


# --- properties ----------------------------------------------------------------------------


@cache
def whole_chain_caches() -> tuple[tuple[DenialCache, tuple[dns.rrset.RRset, ...]], ...]:
    """A cache holding the whole NSEC chain and one holding the whole NSEC3 chain."""
    out = []
    for chain in (nsec_chain(), nsec3_chain()):
        denials = DenialCache()
        add(denials, chain)
        out.append((denials, chain))
    return tuple(out)


@settings(max_examples=60, deadline=None)
@given(st.lists(LABEL, min_size=1, max_size=4), st.sampled_from([A, MX, TXT, DS]))
def test_random_names_are_synthesized_exactly_when_provable(labels, qtype):
    name = dns.name.Name([label.encode() for label in labels]).concatenate(EXAMPLE)
    for denials, chain in whole_chain_caches():
        answer = denials.lookup(name, qtype, NOW, HashBudget())
        # NXDOMAIN exactly for the names that do not exist (nor match a wildcard) ...
        assert nxdomain(answer) == nxdomain_is_right(name), (name, answer)
        if nxdomain(answer):
            assert name not in EXISTING
        # ... and NODATA exactly when the whole chain proves it.
        whole = prove_nodata(name, qtype, EXAMPLE, list(chain)).status is DenialStatus.SECURE
        assert nodata(answer) == whole, (name, qtype, answer)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.booleans(), min_size=64, max_size=64),
    st.lists(LABEL, min_size=1, max_size=4),
    st.sampled_from([A, MX, DS]),
)
def test_any_subset_of_the_records_only_synthesizes_true_answers(keep, labels, qtype):
    name = dns.name.Name([label.encode() for label in labels]).concatenate(EXAMPLE)
    for chain in (nsec_chain(), nsec3_chain()):
        pairs = [chain[i : i + 2] for i in range(0, len(chain), 2)]
        subset = [rrset for pair, kept in zip(pairs, keep, strict=False) if kept for rrset in pair]
        denials = DenialCache()
        add(denials, subset)
        answer = denials.lookup(name, qtype, NOW, HashBudget())
        if nxdomain(answer):
            assert nxdomain_is_right(name), name
        elif answer is not None:
            whole = prove_nodata(name, qtype, EXAMPLE, list(chain))
            assert whole.status is DenialStatus.SECURE, (name, qtype)


# --- answers from kept wildcards (RFC 8198 §5.3) ------------------------------------------

WILD = n("*.w.example.")


def keep_wildcard(cache: DenialCache, proofs, ttl: int = 300, now: float = NOW) -> None:
    """Keep *.w.example. A as a validated expansion for foo.w.example. would leave it."""
    rrset = dns.rrset.from_text("foo.w.example.", ttl, "IN", "A", "192.0.2.4")
    cache.add_wildcard(EXAMPLE, WILD, rrset, sign(rrset, EXAMPLE), list(proofs), now, ttl)


def from_wildcard(cache: DenialCache, name: str, qtype: int = A, now=NOW, budget=None):
    return cache.wildcard(n(name), qtype, now, budget if budget is not None else HashBudget())


def proven(name: str, answer) -> bool:
    records = list(answer.records)
    return prove_wildcard_answer(n(name), WILD, EXAMPLE, records).status is DenialStatus.SECURE


def test_nsec_wildcard_answers_the_names_its_kept_nsec_shows_absent():
    chain = nsec_chain()
    cache = DenialCache()
    keep_wildcard(cache, with_sigs(chain, nsec_covering("foo.w.example.")))
    for name in ("foo.w.example.", "bar.w.example.", "deep.er.w.example."):
        answer = from_wildcard(cache, name)
        assert answer is not None and answer.zone == EXAMPLE, name
        assert answer.rrset.name == n(name) and answer.sigs.name == n(name)
        assert [r.address for r in answer.rrset] == ["192.0.2.4"] and answer.ttl == 300
        assert proven(name, answer)  # what a DO client is given proves the expansion
    assert from_wildcard(cache, "foo.w.example.", MX) is None  # no kept MX at the wildcard
    assert from_wildcard(cache, "foo.w.example.", DS) is None
    assert from_wildcard(cache, "w.example.") is None  # exists (an empty non-terminal)
    assert from_wildcard(cache, "*.w.example.") is None  # exists: the cache answers it
    assert from_wildcard(cache, "zz.example.") is None  # no kept NSEC speaks for it
    assert from_wildcard(cache, "foo.w.example.", now=NOW + 300) is None  # expired
    assert look(cache, "zz.example.") is None  # no SOA kept: no negative answers either
    cache.forget_zone(EXAMPLE)
    assert from_wildcard(cache, "foo.w.example.") is None and len(cache) == 0


def test_nsec3_wildcard_answers_from_the_span_of_the_next_closer_name():
    chain = nsec3_chain()
    cover = nsec3_covering("foo.w.example.")
    cache = DenialCache()
    keep_wildcard(cache, with_sigs(chain, cover))
    answer = from_wildcard(cache, "foo.w.example.")
    assert answer is not None and proven("foo.w.example.", answer)
    assert [r.name for r in answer.records if r.rdtype == NSEC3] == [cover.name]
    assert from_wildcard(cache, "x.foo.w.example.") is not None  # the same next closer
    names = [f"o{i}.w.example." for i in range(400)]
    same = next(x for x in names if nsec3_covering(x) == cover)
    elsewhere = next(x for x in names if nsec3_covering(x) != cover)
    assert from_wildcard(cache, same) is not None
    assert from_wildcard(cache, elsewhere) is None
    assert from_wildcard(cache, "foo.w.example.", budget=HashBudget(remaining=0)) is None


def test_nsec3_opt_out_spans_give_no_wildcard_answer():
    chain = nsec3_chain(optout=True)
    cache = DenialCache()
    keep_wildcard(cache, with_sigs(chain, nsec3_covering("foo.w.example.", chain)))
    assert from_wildcard(cache, "foo.w.example.") is None  # an unsigned cut could be there


def test_kept_wildcards_are_bounded():
    cache = DenialCache(max_records=20)
    chain = nsec_chain()
    proofs = with_sigs(chain, nsec_covering("foo.w.example."))
    for i in range(10):
        rrset = dns.rrset.from_text(f"x.w{i}.example.", 300, "IN", "A", "192.0.2.9")
        wildcard = n(f"*.w{i}.example.")
        cache.add_wildcard(EXAMPLE, wildcard, rrset, sign(rrset, EXAMPLE), proofs, NOW, 300)
    keep_wildcard(cache, proofs)
    assert sum(len(zone.wildcards) for zone in cache._zones.values()) == 20 // 10 + 1
    assert from_wildcard(cache, "foo.w.example.") is not None  # the newest stays


def matches_the_wildcard(name: dns.name.Name) -> bool:
    """Is *.w.example. the answer for `name` (absent, its closest encloser w.example.)?"""
    return closest_encloser(name) == n("w.example.")


@settings(max_examples=60, deadline=None)
@given(st.lists(LABEL, min_size=1, max_size=4), st.sampled_from([A, MX, TXT, DS]))
def test_random_names_get_a_wildcard_answer_exactly_when_it_matches(labels, qtype):
    name = dns.name.Name([label.encode() for label in labels]).concatenate(EXAMPLE)
    for chain in (nsec_chain(), nsec3_chain()):
        cache = DenialCache()
        add(cache, chain)
        keep_wildcard(cache, [])
        answer = cache.wildcard(name, qtype, NOW, HashBudget())
        assert (answer is not None) == (matches_the_wildcard(name) and qtype == A), name
        if answer is not None:
            assert proven(name.to_text(), answer)

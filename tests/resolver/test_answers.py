"""Answering from the cache: a miss is not looked up twice while the cache is unchanged."""

from __future__ import annotations

import dns.name
import dns.rdatatype
import dns.rrset

from poisonproof.resolver.answers import Answer
from poisonproof.resolver.cache import Rank
from poisonproof.resolver.defenses import DEFAULT
from poisonproof.resolver.iterator import Resolver
from poisonproof.resolver.validator import Security
from tests.resolver.inprocess import InProcessWorld

WWW = dns.name.from_text("www.example.")


def counting_resolver() -> tuple[Resolver, list[tuple[dns.name.Name, int]]]:
    """A resolver whose cache records each (name, type) `get_cached` is asked for."""
    resolver = InProcessWorld().resolver(DEFAULT, "10.0.0.1")
    asked: list[tuple[dns.name.Name, int]] = []
    lookup = resolver.cache.get_cached

    def get_cached(name, rdtype, *args):
        asked.append((name, int(rdtype)))
        return lookup(name, rdtype, *args)

    resolver.cache.get_cached = get_cached  # type: ignore[method-assign]
    return resolver, asked


def test_a_miss_asked_again_before_the_cache_changes_is_not_looked_up_again():
    resolver, asked = counting_resolver()
    assert resolver.answers.step(WWW, dns.rdatatype.A) is None
    probes = len(asked)
    assert probes > 0
    assert resolver.answers.step(WWW, dns.rdatatype.A) is None  # the resolution's first step
    assert len(asked) == probes
    assert resolver.answers.step(WWW, dns.rdatatype.AAAA) is None  # another question: looked up
    assert len(asked) > probes


def test_a_store_or_a_validation_mark_makes_the_cache_look_again():
    resolver, asked = counting_resolver()
    assert resolver.answers.step(WWW, dns.rdatatype.A) is None
    resolver.cache.put(
        dns.rrset.from_text("www.example.", 300, "IN", "A", "192.0.2.80"), Rank.ANSWER_AUTH
    )
    found = resolver.answers.step(WWW, dns.rdatatype.A)
    assert isinstance(found, Answer) and found.answer[0][0].address == "192.0.2.80"  # type: ignore[attr-defined]
    writes = resolver.cache.writes
    resolver.cache.mark(WWW, dns.rdatatype.A, Security.BOGUS, (6, "test"))
    assert resolver.cache.writes == writes + 1
    resolver.cache.mark(dns.name.from_text("absent.example."), dns.rdatatype.A, Security.BOGUS)
    assert resolver.cache.writes == writes + 1  # nothing cached there: nothing changed
    resolver.cache.forget(WWW, dns.rdatatype.A)
    assert resolver.cache.writes == writes + 2
    assert resolver.answers.step(WWW, dns.rdatatype.A) is None  # removed: looked up, missed


def test_a_cached_name_is_found_by_the_frontend_and_the_resolution_alike():
    resolver, _ = counting_resolver()
    resolver.cache.put(
        dns.rrset.from_text("alias.example.", 300, "IN", "CNAME", "www.example."),
        Rank.ANSWER_AUTH,
    )
    assert resolver.cached_answer(dns.name.from_text("alias.example."), dns.rdatatype.A) is None
    resolver.cache.put(
        dns.rrset.from_text("www.example.", 300, "IN", "A", "192.0.2.80"), Rank.ANSWER_AUTH
    )
    cached = resolver.cached_answer(dns.name.from_text("alias.example."), dns.rdatatype.A)
    assert cached is not None and [r.rdtype for r in cached.answer] == [5, 1]

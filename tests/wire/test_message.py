"""The raw-bytes helpers agree with dnspython."""

from __future__ import annotations

import random

import dns.flags
import dns.message
import dns.rrset
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonproof.resolver.answer_cache import AnswerCache
from poisonproof.wire.message import patch_reply, query_key, ttl_offsets
from tests.resolver.inprocess import ManualClock


def reply_for(query: dns.message.Message) -> bytes:
    reply = dns.message.make_response(query)
    name = query.question[0].name
    reply.answer = [
        dns.rrset.from_text(name, 300, "IN", "CNAME", "www.bank.example."),
        dns.rrset.from_text("www.bank.example.", 200, "IN", "A", "192.0.2.80", "192.0.2.81"),
    ]
    reply.authority = [dns.rrset.from_text("bank.example.", 3600, "IN", "NS", "ns1.bank.example.")]
    return reply.to_wire()


def test_key_ignores_case_and_id_but_not_type_edns_do_or_rd():
    a = dns.message.make_query("WwW.Bank.Example", "A").to_wire()
    b = dns.message.make_query("www.bank.example", "A").to_wire()
    assert query_key(a).key == query_key(b).key
    different = [
        dns.message.make_query("www.bank.example", "AAAA"),
        dns.message.make_query("www.bank.example", "A", use_edns=0),
        dns.message.make_query("www.bank.example", "A", want_dnssec=True),
    ]
    norec = dns.message.make_query("www.bank.example", "A")
    norec.flags &= ~dns.flags.RD
    different.append(norec)
    keys = {query_key(q.to_wire()).key for q in different} | {query_key(b).key}
    assert len(keys) == 5


def test_unusual_queries_take_the_slow_path():
    with_cookie = dns.message.make_query("www.bank.example", "A", use_edns=0)
    with_cookie.use_edns(0, options=[dns.edns.CookieOption(b"12345678", b"")])
    response = dns.message.make_response(dns.message.make_query("x.", "A"))
    for wire in [with_cookie.to_wire(), response.to_wire(), b"\x00" * 5]:
        assert query_key(wire) is None


def test_a_lone_cookie_keys_as_no_option_only_where_cookies_are_ignored():
    plain = dns.message.make_query("www.bank.example", "A", use_edns=0).to_wire()
    for server_cookie in (b"", b"s" * 8, b"s" * 32):
        query = dns.message.make_query("WWW.bank.example", "A", use_edns=0)
        query.use_edns(0, options=[dns.edns.CookieOption(b"12345678", server_cookie)])
        wire = query.to_wire()
        assert query_key(wire) is None  # the resolver's frontend answers cookies in full
        assert query_key(wire, cookie_ignored=True).key == query_key(plain).key
    unusual = [
        [dns.edns.GenericOption(10, b"short")],  # not a legal cookie length
        [dns.edns.CookieOption(b"12345678", b""), dns.edns.GenericOption(12, b"\x00")],
        [dns.edns.GenericOption(12, b"\x00" * 8)],  # padding, not a cookie
    ]
    for options in unusual:
        query = dns.message.make_query("www.bank.example", "A", use_edns=0)
        query.use_edns(0, options=options)
        assert query_key(query.to_wire(), cookie_ignored=True) is None


def test_ttl_offsets_match_dnspython_and_patching_ages_them():
    query = dns.message.make_query("Alias.Bank.Example", "A", use_edns=0)
    wire = reply_for(query)
    offsets = ttl_offsets(wire)
    assert len(offsets) == 4  # CNAME, 2 A share one RRset but are 2 records, NS; OPT skipped
    fresh = dns.message.make_query("aLIAS.bANK.eXAMPLE", "A", use_edns=0)
    patched = patch_reply(
        wire, fresh.to_wire(), query_key(fresh.to_wire()).question_end, offsets, 50
    )
    parsed = dns.message.from_wire(patched)
    assert parsed.id == fresh.id
    assert parsed.question[0].name.to_text() == "aLIAS.bANK.eXAMPLE."
    assert [r.ttl for r in parsed.answer] == [250, 150]
    assert parsed.authority[0].ttl == 3550


def test_answer_cache_replays_until_the_shortest_ttl():
    clock = ManualClock()
    cache = AnswerCache(clock)
    query = dns.message.make_query("alias.bank.example", "A")
    assert cache.store(query.to_wire(), reply_for(query), 200)
    clock.now += 100
    again = dns.message.make_query("ALIAS.bank.example", "A")
    replay = dns.message.from_wire(cache.lookup(again.to_wire()))
    assert replay.id == again.id and [r.ttl for r in replay.answer] == [200, 100]
    clock.now += 100
    assert cache.lookup(again.to_wire()) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=300))
def test_walkers_never_raise(data):
    query_key(data)
    ttl_offsets(data)


def test_random_mutations_of_queries_are_keyed_or_refused_never_misread():
    rng = random.Random(7)
    base = dns.message.make_query("www.bank.example", "A", use_edns=0).to_wire()
    for _ in range(5000):
        packet = bytearray(base)
        packet[rng.randrange(len(packet))] = rng.randrange(256)
        key = query_key(bytes(packet))
        if key is not None:
            parsed = dns.message.from_wire(bytes(packet))  # a keyed query must parse
            assert (
                parsed.question[0].name.to_wire().lower()
                == bytes(packet[12 : key.question_end - 4]).lower()
            )

"""The stored-reply cache behind the UDP fast path: exact-bytes memo, TTL ageing, expiry."""

from __future__ import annotations

import dns.message
import dns.rrset

from poisonproof.net.base import ManualClock
from poisonproof.resolver.answer_cache import AnswerCache


def query_and_reply(qname: str, address: str, ttl: int = 300) -> tuple[bytes, bytes]:
    query = dns.message.make_query(qname, "A")
    reply = dns.message.make_response(query)
    reply.answer.append(dns.rrset.from_text(qname, ttl, "IN", "A", address))
    return query.to_wire(), reply.to_wire()


LOCAL = ("127.0.0.1", 5300)
"""The peer of the batch replays below, admitted by `anyone`."""


def anyone(host: str) -> bool:
    return True


def replay(cache: AnswerCache, queries: list[bytes], now: float) -> list[bytes | None]:
    return cache.replay_batch(queries, now, [LOCAL] * len(queries), anyone)


def asked(qname: str, query_id: int) -> bytes:
    query = dns.message.make_query(qname, "A")
    query.id = query_id
    return query.to_wire()


def test_replies_carry_the_new_id_and_case_and_age_by_whole_seconds() -> None:
    clock = ManualClock(1000.25)
    cache = AnswerCache(clock)
    query, reply = query_and_reply("www.example.", "192.0.2.1", ttl=300)
    assert cache.store(query, reply, 300)
    for step, expected_ttl in [
        (0.0, 300),
        (0.5, 300),
        (0.8, 299),
        (1.7, 299),
        (1.8, 298),
        (102.0, 198),
    ]:
        clock.now = 1000.25 + step
        for query_id, name in [(7, "WwW.Example."), (8, "www.example."), (7, "WwW.Example.")]:
            wire = cache.lookup(asked(name, query_id))
            assert wire is not None
            got = dns.message.from_wire(wire)
            assert got.id == query_id
            assert got.question[0].name.to_text() == name
            assert got.answer[0].ttl == expected_ttl
            assert got.answer[0].name.to_text() == name  # the owner echoes the question


def test_batch_replay_equals_lookup_and_expiry_and_replacement_are_seen() -> None:
    clock = ManualClock(50.0)
    cache = AnswerCache(clock)
    query, reply = query_and_reply("a.example.", "192.0.2.1", ttl=10)
    cache.store(query, reply, 10)
    queries = [asked("a.example.", 1), asked("A.EXAMPLE.", 2), asked("b.example.", 3)]
    batch = replay(cache, queries, clock.now)
    assert batch[:2] == [cache.lookup(q) for q in queries[:2]]
    assert batch[2] is None
    # a newer answer for the same question replaces what the memo replays
    query2, reply2 = query_and_reply("a.example.", "192.0.2.99", ttl=10)
    cache.store(query2, reply2, 10)
    (again,) = replay(cache, [asked("a.example.", 4)], clock.now)
    assert again is not None
    assert dns.message.from_wire(again).answer[0][0].to_text() == "192.0.2.99"
    # one second early rather than a TTL of 0; then nothing
    clock.now = 58.9
    assert cache.lookup(asked("a.example.", 5)) is not None
    clock.now = 59.0
    assert replay(cache, [asked("a.example.", 6)], clock.now) == [None]
    assert len(cache) == 0


def test_eviction_keeps_the_newest_entries_and_drops_their_memo() -> None:
    clock = ManualClock(0.0)
    cache = AnswerCache(clock, max_entries=2)
    for i in range(3):
        query, reply = query_and_reply(f"n{i}.example.", f"192.0.2.{i + 1}")
        cache.store(query, reply, 300)
        assert cache.lookup(asked(f"n{i}.example.", i)) is not None
    assert len(cache) == 2
    assert cache.lookup(asked("n0.example.", 9)) is None
    assert replay(cache, [asked("n0.example.", 9)], clock.now) == [None]
    assert cache.lookup(asked("n2.example.", 9)) is not None


def test_batch_replay_answers_only_admitted_peers_memo_or_not() -> None:
    clock = ManualClock(70.0)
    cache = AnswerCache(clock)
    query, reply = query_and_reply("a.example.", "192.0.2.1")
    cache.store(query, reply, 300)
    admitted = {"127.0.0.1": True, "192.0.2.50": False}.get
    peers = [("127.0.0.1", 5000), ("192.0.2.50", 5000), ("198.51.100.1", 53)]
    for _ in range(2):  # first from the stored entry, then from the exact-bytes memo
        queries = [asked("a.example.", 1), asked("a.example.", 2), asked("a.example.", 3)]
        batch = cache.replay_batch(queries, clock.now, peers, admitted)
        assert batch[0] is not None and dns.message.from_wire(batch[0]).id == 1
        assert batch[1:] == [None, None]  # refused, and never seen (not admitted yet)

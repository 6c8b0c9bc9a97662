"""Outgoing query rules: IDs, ports, 0x20 and the acceptance test."""

from __future__ import annotations

import dataclasses
import random

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from poisonproof.resolver.defenses import DEFAULT, PRE_2008, PRESETS, TxidStrategy, preset
from poisonproof.resolver.outgoing import EDNS_PAYLOAD, Entropy, QueryFactory, query_wire

SERVER = ("192.0.2.53", 53)
NAME = dns.name.from_text("www.example.")


def factory(defenses, seed=1) -> QueryFactory:
    return QueryFactory(defenses, Entropy(random.Random(seed)))


def test_sequential_ids_are_predictable_and_csprng_ones_are_not():
    seq = factory(dataclasses.replace(DEFAULT, txid=TxidStrategy.SEQUENTIAL))
    ids = [seq.txid() for _ in range(5)]
    assert all((b - a) % 65536 == 1 for a, b in zip(ids, ids[1:], strict=False))
    csprng = factory(DEFAULT)
    assert len({csprng.txid() for _ in range(1000)}) > 980


def test_port_pools():
    full = factory(DEFAULT)
    assert len({full.source_port() for _ in range(2000)}) > 1900
    one = factory(PRE_2008)
    assert len({one.source_port() for _ in range(100)}) == 1
    fixed = factory(dataclasses.replace(PRE_2008, fixed_port=33333))
    assert fixed.source_port() == 33333
    sixteen = factory(dataclasses.replace(DEFAULT, port_pool=16))
    assert len({sixteen.source_port() for _ in range(2000)}) == 16


def test_0x20_keeps_the_name_and_randomizes_letters_only():
    f = factory(DEFAULT)
    name = dns.name.from_text("www-1.example.")
    spelled = {f.randomize_case(name).to_text() for _ in range(200)}
    assert all(s.lower() == "www-1.example." for s in spelled)
    assert len(spelled) > 100


def reply_to(query, *, txid=None, name=None) -> bytes:
    message = dns.message.from_wire(query.wire)
    reply = dns.message.make_response(message)
    if txid is not None:
        reply.id = txid
    if name is not None:
        reply.question[0].name = dns.name.from_text(name)
    return reply.to_wire()


def test_acceptance_test_verdicts():
    f = factory(dataclasses.replace(DEFAULT, cookies=False))
    query = f.make(NAME, 1, SERVER, use_0x20=True)
    assert query.check(reply_to(query), SERVER) is None
    assert query.check(reply_to(query), ("192.0.2.54", 53)) == "wrong_source"
    assert query.check(reply_to(query), (SERVER[0], 5353)) == "wrong_source"
    assert query.check(reply_to(query, txid=(query.txid + 1) % 65536), SERVER) == "wrong_id"
    swapped = query.sent_name.to_text().swapcase()
    if swapped != query.sent_name.to_text():
        assert query.check(reply_to(query, name=swapped), SERVER) == "wrong_case"
    assert query.check(reply_to(query, name="other.example."), SERVER) == "wrong_question"
    assert query.check(b"\x00" * 3, SERVER) == "malformed"
    query.reject("wrong_id")
    assert query.log.near_misses == 1 and query.log.unwanted == 1


def test_every_preset_builds_and_ablations_change_one_thing():
    base = dataclasses.asdict(DEFAULT)
    for name, defenses in PRESETS.items():
        changed = {k for k, v in dataclasses.asdict(defenses).items() if v != base[k]}
        if name.startswith("no-"):
            assert len(changed) == 1, name
        assert preset(name) is defenses
    assert PRE_2008.describe().startswith("txid=random16")


def _dnspython_query(
    txid: int,
    name: dns.name.Name,
    qtype: int,
    rd: bool,
    edns_flags: int | None,
    cookie: bytes | None,
    server_cookie: bytes,
) -> bytes:
    """How the factory used to build queries: dnspython's message objects."""
    query = dns.message.make_query(name, qtype, dns.rdataclass.IN)
    if not rd:
        query.flags &= ~dns.flags.RD
    query.id = txid
    if edns_flags is not None:
        options: list[dns.edns.Option] = []
        if cookie is not None:
            options.append(dns.edns.CookieOption(cookie, server_cookie))
        query.use_edns(0, edns_flags, EDNS_PAYLOAD, options=options)
    return query.to_wire()


@pytest.mark.parametrize("rd", [False, True])
@pytest.mark.parametrize("edns_flags", [None, 0, dns.flags.DO])
@pytest.mark.parametrize("server_cookie", [None, b"", b"S" * 8, b"T" * 32])
@pytest.mark.parametrize("name", ["WwW.ExAmPlE.", ".", "a.b.c.d.e.f.g.h.example."])
def test_query_wire_is_what_dnspython_renders(
    rd: bool, edns_flags: int | None, server_cookie: bytes | None, name: str
) -> None:
    qname = dns.name.from_text(name)
    cookie = None if server_cookie is None or edns_flags is None else b"C" * 8
    wire = query_wire(
        0xBEEF,
        qname,
        dns.rdatatype.AAAA,
        recursion_desired=rd,
        edns_flags=edns_flags,
        cookie=None if cookie is None else cookie + (server_cookie or b""),
    )
    assert wire == _dnspython_query(
        0xBEEF, qname, dns.rdatatype.AAAA, rd, edns_flags, cookie, server_cookie or b""
    )


def test_made_queries_match_dnspython_and_make_no_message(monkeypatch: pytest.MonkeyPatch) -> None:
    factory = QueryFactory(DEFAULT, Entropy(random.Random(7)))
    made: list[object] = []
    real = dns.message.make_query
    monkeypatch.setattr(dns.message, "make_query", lambda *a, **k: made.append(a) or real(*a, **k))
    server = ("192.0.2.53", 53)
    for dnssec_ok in (False, True):
        query = factory.make(
            dns.name.from_text("www.example."),
            dns.rdatatype.A,
            server,
            use_0x20=True,
            server_cookie=b"S" * 16,
            dnssec_ok=dnssec_ok,
        )
        parsed = dns.message.from_wire(query.wire)
        assert parsed.id == query.txid and not parsed.flags & dns.flags.RD
        assert parsed.question[0].name.to_wire() == query.sent_name.to_wire()
        assert parsed.payload == EDNS_PAYLOAD
        assert bool(parsed.ednsflags & dns.flags.DO) == dnssec_ok
        cookie = parsed.options[0]
        assert cookie.client == factory.client_cookie(server) == query.client_cookie
        assert cookie.server == b"S" * 16
    assert made == []  # built directly, no dnspython message


def _flip_per_byte(rng: random.Random, name: dns.name.Name) -> tuple[bytes, ...]:
    """0x20 as first written: one draw per label, each letter's bit tested in turn."""
    labels = []
    for label in name.labels:
        bits = rng.getrandbits(max(1, len(label)))
        labels.append(
            bytes(
                (c ^ 0x20) if (0x61 <= (c | 0x20) <= 0x7A and (bits >> i) & 1) else c
                for i, c in enumerate(label)
            )
        )
    return tuple(labels)


def test_0x20_flips_the_same_letters_for_the_same_draws():
    """Seeded runs (the simulated lab) depend on the draws and their use staying put."""
    pick = random.Random(7)
    for _ in range(1500):
        labels = [
            bytes(pick.randrange(256) for _ in range(pick.randrange(1, 64)))
            for _ in range(pick.randrange(0, 4))
        ]
        name = dns.name.Name([*labels, b""])
        factory = QueryFactory(DEFAULT, Entropy(random.Random(pick.randrange(10**9))))
        twin = random.Random()
        twin.setstate(factory.entropy.secure.getstate())
        assert factory.randomize_case(name).labels == _flip_per_byte(twin, name)
        assert factory.entropy.secure.getstate() == twin.getstate()


def test_a_0x20_reply_is_parsed_with_its_compressed_names_lowercase():
    """Names compressed into the echoed question come out canonical (what the cache keeps);
    the case the server echoed is still checked on the datagram itself."""
    f = factory(dataclasses.replace(DEFAULT, cookies=False))
    for _ in range(20):
        query = f.make(dns.name.from_text("www.bank.example."), 1, SERVER, use_0x20=True)
        message = dns.message.from_wire(query.wire)
        reply = dns.message.make_response(message)
        reply.answer.append(
            dns.rrset.from_text(message.question[0].name, 60, "IN", "CNAME", "Host.bank.example.")
        )
        wire = reply.to_wire()
        assert query.check(wire, SERVER) is None
        parsed = query.parsed(wire)
        assert parsed is not None and parsed.id == query.txid
        owner, target = parsed.answer[0].name, parsed.answer[0][0].target
        assert owner.to_text() == "www.bank.example."  # through the pointer to the question
        assert target.to_text() == "Host.bank.example."  # its own labels keep their case
        if query.sent_name.to_text() != "www.bank.example.":
            echoed = wire[:12] + wire[12:30].lower() + wire[30:]
            assert query.check(echoed, SERVER) == "wrong_case"


def test_client_cookies_are_per_server_stable_and_secret_keyed():
    factory = QueryFactory(DEFAULT, Entropy(random.Random(1)))
    servers = [("192.0.2.53", 53), ("192.0.2.53", 5353), ("192.0.2.54", 53)]
    cookies = [factory.client_cookie(server) for server in servers]
    assert len(set(cookies)) == 3 and all(len(c) == 8 for c in cookies)
    for _ in range(3):  # remembered, and past the memo's bound worked out again the same
        for i in range(5000):
            factory.client_cookie(("198.51.100.1", i))
        assert [factory.client_cookie(server) for server in servers] == cookies
    other = QueryFactory(DEFAULT, Entropy(random.Random(2)))  # another resolver's secret
    assert other.client_cookie(servers[0]) != cookies[0]

"""Defenses that act on the exchange itself: near-miss TCP retry, 0x20 fallback, the
unwanted-reply alarm, client cookies, and forged replies racing the real one."""

from __future__ import annotations

import dataclasses

import dns.edns
import dns.message
import dns.rrset

from poisonproof.resolver.defenses import DEFAULT, PRE_2008, Defenses
from tests.resolver.inprocess import texts

NO_QM = dataclasses.replace(DEFAULT, qname_minimisation=False)
VICTIM = ("10.0.0.3", 53)


def forged_answer(exchange, txid: int, address: str = "6.6.6.6", name=None) -> bytes:
    query = dns.message.from_wire(exchange.query.wire)
    reply = dns.message.make_response(query)
    reply.id = txid
    if name is not None:
        reply.question[0].name = name
    reply.answer = [dns.rrset.from_text(query.question[0].name, 300, "IN", "A", address)]
    reply.flags |= 0x0400  # AA
    return reply.to_wire()


def flood(count: int, defenses: Defenses | None = None):
    """Forged replies from the victim server's address with wrong IDs, before the real one."""

    def forgeries(exchange):
        if exchange.query.server != VICTIM:
            return []
        wrong = [(exchange.query.txid + i) % 65536 for i in range(1, count + 1)]
        return [(forged_answer(exchange, txid), VICTIM) for txid in wrong]

    return forgeries


def test_near_misses_make_the_resolver_retry_over_tcp(world):
    world.forgeries = flood(3)
    resolver = world.resolver(NO_QM, "10.0.0.1")
    answer = world.run(resolver, "www.victim.test")
    assert texts(answer) == ["www.victim.test. 300 IN A 192.0.2.80"]
    assert resolver.stats["nearmiss_tcp_retries"] == 1
    assert world.exchanges[-1].tcp and world.exchanges[-1].query.server == VICTIM


def test_without_the_defense_the_udp_answer_is_taken(world):
    world.forgeries = flood(3)
    resolver = world.resolver(dataclasses.replace(NO_QM, nearmiss_tcp=False), "10.0.0.1")
    world.run(resolver, "www.victim.test")
    assert "nearmiss_tcp_retries" not in resolver.stats
    assert not any(ex.tcp for ex in world.exchanges)
    assert resolver.stats["near_misses"] == 3


def test_a_forgery_that_guesses_everything_wins_against_2008(world):
    """The race itself: the forged reply carries the right ID and arrives first."""

    def lucky(exchange):
        if exchange.query.server != VICTIM:
            return []
        return [(forged_answer(exchange, exchange.query.txid), VICTIM)]

    world.forgeries = lucky
    resolver = world.resolver(PRE_2008, "10.0.0.1")
    assert texts(world.run(resolver, "www.victim.test")) == ["www.victim.test. 300 IN A 6.6.6.6"]


def test_wrong_case_is_a_near_miss_under_0x20(world):
    def wrong_case(exchange):
        if exchange.query.server != VICTIM:
            return []
        swapped = exchange.query.sent_name.to_text().swapcase()
        return [
            (forged_answer(exchange, exchange.query.txid, name=dns.name.from_text(swapped)), VICTIM)
        ]

    world.forgeries = wrong_case
    resolver = world.resolver(NO_QM, "10.0.0.1")
    answer = world.run(resolver, "www.victim.test")
    assert texts(answer) == ["www.victim.test. 300 IN A 192.0.2.80"]
    assert resolver.stats["case_mismatches"] >= 1


def test_servers_that_do_not_echo_case_are_remembered(world):
    def lowercase_question(exchange, reply):
        if reply is None or exchange.query.server != VICTIM:
            return reply
        message = dns.message.from_wire(reply)
        message.question[0].name = message.question[0].name.canonicalize()
        message.answer = [
            dns.rrset.from_text(
                r.name.canonicalize(), r.ttl, "IN", r.rdtype, *[x.to_text() for x in r]
            )
            for r in message.answer
        ]
        return message.to_wire()

    world.tamper = lowercase_question
    resolver = world.resolver(NO_QM, "10.0.0.1")
    assert texts(world.run(resolver, "www.victim.test")) == ["www.victim.test. 300 IN A 192.0.2.80"]
    assert resolver.infra.state(VICTIM).no_caps
    before = len(world.exchanges)
    world.run(resolver, "mail.victim.test")
    later = world.exchanges[before:]
    assert len(later) == 1 and not later[0].query.exact_case and not later[0].tcp


def test_unwanted_replies_raise_the_alarm_and_switch_the_zone_to_tcp(world):
    world.forgeries = flood(40)
    defenses = dataclasses.replace(NO_QM, unwanted_threshold=100, nearmiss_tcp=False)
    resolver = world.resolver(defenses, "10.0.0.1")
    for i in range(3):
        world.run(resolver, f"n{i}.victim.test")
    assert resolver.stats["spoof_alarms"] == 1
    assert resolver.infra.tcp_only(dns.name.from_text("victim.test."), world.clock.now)
    before = len(world.exchanges)
    world.run(resolver, "n9.victim.test")
    assert all(ex.tcp for ex in world.exchanges[before:])


def cookie_server(world, echo_client: bool = True):
    """The victim server speaks cookies: it echoes the client cookie with its own."""

    def tamper(exchange, reply):
        if reply is None or exchange.query.server != VICTIM:
            return reply
        query = dns.message.from_wire(exchange.query.wire)
        message = dns.message.from_wire(reply)
        client = next(
            (o.client for o in query.options if o.otype == dns.edns.OptionType.COOKIE), None
        )
        if client is not None:
            message.use_edns(0, options=[dns.edns.CookieOption(client, b"servercookie1234")])
        return message.to_wire()

    world.tamper = tamper


def test_cookie_is_learned_and_then_required(world):
    cookie_server(world)
    resolver = world.resolver(NO_QM, "10.0.0.1")
    world.run(resolver, "www.victim.test")
    assert resolver.infra.state(VICTIM).server_cookie == b"servercookie1234"

    def cookieless_forgery(exchange):
        if exchange.query.server != VICTIM:
            return []
        return [(forged_answer(exchange, exchange.query.txid), VICTIM)]

    world.forgeries = cookieless_forgery
    answer = world.run(resolver, "mail.victim.test")
    assert texts(answer) == ["mail.victim.test. 300 IN A 192.0.2.25"]
    assert resolver.stats["near_misses"] >= 1
    sent = dns.message.from_wire(world.exchanges[-1].query.wire)
    (cookie,) = [o for o in sent.options if o.otype == dns.edns.OptionType.COOKIE]
    assert cookie.server == b"servercookie1234"


def test_without_cookies_the_same_forgery_is_accepted(world):
    cookie_server(world)
    defenses = dataclasses.replace(NO_QM, cookies=False)
    resolver = world.resolver(defenses, "10.0.0.1")
    world.run(resolver, "www.victim.test")
    world.forgeries = lambda ex: (
        [(forged_answer(ex, ex.query.txid), VICTIM)] if ex.query.server == VICTIM else []
    )
    assert texts(world.run(resolver, "mail.victim.test")) == ["mail.victim.test. 300 IN A 6.6.6.6"]

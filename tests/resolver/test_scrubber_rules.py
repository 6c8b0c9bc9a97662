"""Each scrubbing rule against a hostile reply: `default` rejects it, `2008` believes it.

The hostile replies come from the attacker's own legitimately delegated server
(evil.test, 10.0.0.66), or stand for a forged reply that won the race, by rewriting what
a server sent. Success is checked as a victim would see it: afterwards an honest lookup
of www.victim.test (or the name attacked) returns the attacker's address.
"""

from __future__ import annotations

import dataclasses

import dns.flags
import dns.message
import dns.rrset
import pytest

from poisonproof.resolver.defenses import DEFAULT, PRE_2008, preset
from tests.resolver.inprocess import texts

EVIL = "10.0.0.66"
VICTIM = "10.0.0.3"
POISON = "6.6.6.6"
DEFAULT_NO_QM = dataclasses.replace(DEFAULT, qname_minimisation=False)


def rewrite(server: str, edit):
    """A tamper hook that lets `edit(message, question_name)` change replies from `server`."""

    def tamper(exchange, reply):
        if reply is None or exchange.query.server[0] != server:
            return reply
        message = dns.message.from_wire(reply)
        edit(message, message.question[0].name.to_text().lower())
        return message.to_wire()

    return tamper


def evil_answers_for_victim(world):
    """Make the evil server also answer (authoritatively, falsely) for victim.test."""
    inner = world.tamper

    def tamper(exchange, reply):
        reply = inner(exchange, reply) if inner else reply
        if exchange.query.server[0] != EVIL:
            return reply
        query = dns.message.from_wire(exchange.query.wire)
        name = query.question[0].name
        if name.is_subdomain(dns.name.from_text("victim.test.")):
            forged = dns.message.make_response(query)
            forged.flags |= dns.flags.AA
            forged.answer = [dns.rrset.from_text(name, 300, "IN", "A", POISON)]
            return forged.to_wire()
        return reply

    world.tamper = tamper


def victim_sees(world, resolver, name="www.victim.test") -> list[str]:
    answer = world.run(resolver, name)
    return [r.address for rrset in answer.answer for r in rrset if rrset.rdtype == 1]


PRESETS = [("default", DEFAULT_NO_QM, False), ("2008", PRE_2008, True)]


@pytest.mark.parametrize(("label", "defenses", "poisoned"), PRESETS)
def test_out_of_bailiwick_answer_record(world, label, defenses, poisoned):
    world.tamper = rewrite(
        EVIL,
        lambda m, q: m.answer.append(
            dns.rrset.from_text("www.victim.test.", 300, "IN", "A", POISON)
        ),
    )
    resolver = world.resolver(defenses, "10.0.0.1")
    world.run(resolver, "www.evil.test")
    assert (victim_sees(world, resolver) == [POISON]) is poisoned


@pytest.mark.parametrize(("label", "defenses", "poisoned"), PRESETS)
def test_out_of_bailiwick_additional_record(world, label, defenses, poisoned):
    world.tamper = rewrite(
        EVIL,
        lambda m, q: m.additional.append(
            dns.rrset.from_text("www.victim.test.", 300, "IN", "A", POISON)
        ),
    )
    resolver = world.resolver(defenses, "10.0.0.1")
    world.run(resolver, "www.evil.test")
    assert (victim_sees(world, resolver) == [POISON]) is poisoned


@pytest.mark.parametrize(("label", "defenses", "poisoned"), PRESETS)
def test_sideways_referral(world, label, defenses, poisoned):
    def refer_to_victim(message, qname):
        if qname == "x.evil.test.":
            message.flags &= ~dns.flags.AA
            message.set_rcode(0)
            message.answer = []
            message.authority = [
                dns.rrset.from_text("victim.test.", 300, "IN", "NS", "ns.evil.test.")
            ]
            message.additional = [dns.rrset.from_text("ns.evil.test.", 300, "IN", "A", EVIL)]

    world.tamper = rewrite(EVIL, refer_to_victim)
    evil_answers_for_victim(world)
    resolver = world.resolver(defenses, "10.0.0.1")
    world.run(resolver, "x.evil.test")
    assert (victim_sees(world, resolver) == [POISON]) is poisoned


@pytest.mark.parametrize(("label", "defenses", "poisoned"), PRESETS)
def test_authority_ns_override_in_a_positive_answer(world, label, defenses, poisoned):
    """Kaminsky variant (b): a (forged) answer carrying an in-bailiwick NS + glue override."""

    def override(message, qname):
        if qname == "x7f3.victim.test.":
            message.set_rcode(0)
            message.answer = [dns.rrset.from_text("x7f3.victim.test.", 300, "IN", "A", "192.0.2.1")]
            message.authority = [
                dns.rrset.from_text("victim.test.", 86400, "IN", "NS", "ns.evil.test.")
            ]
            message.additional = [dns.rrset.from_text("ns.evil.test.", 86400, "IN", "A", EVIL)]

    world.tamper = rewrite(VICTIM, override)
    evil_answers_for_victim(world)
    resolver = world.resolver(defenses, "10.0.0.1")
    world.run(resolver, "x7f3.victim.test")
    assert (victim_sees(world, resolver) == [POISON]) is poisoned


@pytest.mark.parametrize(("label", "defenses", "poisoned"), PRESETS)
def test_answer_record_off_the_chain(world, label, defenses, poisoned):
    world.tamper = rewrite(
        VICTIM,
        lambda m, q: (
            m.answer.append(dns.rrset.from_text("mail.victim.test.", 300, "IN", "A", POISON))
            if q == "www.victim.test."
            else None
        ),
    )
    resolver = world.resolver(defenses, "10.0.0.1")
    world.run(resolver, "www.victim.test")
    world.tamper = None
    assert (victim_sees(world, resolver, "mail.victim.test") == [POISON]) is poisoned


@pytest.mark.parametrize(("label", "defenses", "from_glue"), PRESETS)
def test_glue_is_not_served_as_an_answer(world, label, defenses, from_glue):
    def lie_in_glue(message, qname):
        for rrset in message.additional:
            if rrset.name.to_text().lower() == "ns1.victim.test.":
                message.additional = [
                    dns.rrset.from_text("ns1.victim.test.", 300, "IN", "A", POISON),
                    dns.rrset.from_text("ns2.victim.test.", 300, "IN", "A", VICTIM),
                ]
                return

    world.tamper = rewrite("10.0.0.2", lie_in_glue)
    resolver = world.resolver(defenses, "10.0.0.1")
    world.run(resolver, "www.victim.test")
    # the client asks for the name server's address: glue is not an answer (RFC 2181)
    assert (victim_sees(world, resolver, "ns1.victim.test") == [POISON]) is from_glue


@pytest.mark.parametrize(
    ("label", "defenses", "replaced"),
    [("no-bailiwick", preset("no-bailiwick"), False), ("2008", PRE_2008, True)],
)
def test_glue_never_replaces_authoritative_data(world, label, defenses, replaced):
    resolver = world.resolver(dataclasses.replace(defenses, qname_minimisation=False), "10.0.0.1")
    assert victim_sees(world, resolver, "ns1.victim.test") == [VICTIM]  # authoritative answer
    world.tamper = rewrite(
        EVIL,
        lambda m, q: m.additional.append(
            dns.rrset.from_text("ns1.victim.test.", 300, "IN", "A", POISON)
        ),
    )
    world.run(resolver, "www.evil.test")
    world.tamper = None
    assert (victim_sees(world, resolver, "ns1.victim.test") == [POISON]) is replaced


def test_trace_shows_what_the_scrubber_dropped(world):
    world.tamper = rewrite(
        EVIL,
        lambda m, q: m.additional.append(
            dns.rrset.from_text("www.victim.test.", 300, "IN", "A", POISON)
        ),
    )
    resolver = world.resolver(DEFAULT_NO_QM, "10.0.0.1")
    trace = []
    answer = world.run(resolver, "www.evil.test", trace=trace)
    assert texts(answer) == ["www.evil.test. 60 IN A 203.0.113.66"]
    dropped = [d for event in trace for d in event.dropped]
    assert ("www.victim.test. A", "additional-section record not needed for this reply") in dropped

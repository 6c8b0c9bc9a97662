"""The client side: ACL, RD semantics, errors, and the cache-hit fast path."""

from __future__ import annotations

import dataclasses

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype

from poisonproof.net.base import Via
from poisonproof.resolver.defenses import DEFAULT
from poisonproof.resolver.frontend import Frontend, Question

CLIENT = ("127.0.0.1", 5555)


def resolved(world, frontend, question):
    """The resolver's answer to `question`, asked of the in-process world."""
    return world.run(
        frontend.resolver, question.qname.to_text(), dns.rdatatype.to_text(question.qtype)
    )


def full_answer(world, frontend, wire, via=Via.UDP):
    outcome = frontend.receive(wire, CLIENT, via)
    if isinstance(outcome, Question):
        return frontend.render(outcome.query, resolved(world, frontend, outcome), via, outcome.wire)
    return outcome


def test_second_identical_question_is_served_by_the_fast_path(world):
    frontend = Frontend(world.resolver(DEFAULT, "10.0.0.1"))
    first = dns.message.make_query("alias.victim.test", "A")
    reply = dns.message.from_wire(full_answer(world, frontend, first.to_wire()))
    assert [r.ttl for r in reply.answer] == [300, 300]
    world.clock.now += 42
    second = dns.message.make_query("ALIAS.victim.TEST", "A")
    wire = frontend.receive(second.to_wire(), CLIENT, Via.UDP)
    assert isinstance(wire, bytes) and frontend.answers.hits == 1
    replay = dns.message.from_wire(wire)
    assert replay.id == second.id and replay.question[0].name.to_text() == "ALIAS.victim.TEST."
    assert replay.flags & dns.flags.RA and [r.ttl for r in replay.answer] == [258, 258]


def test_a_reply_rendered_before_a_reload_is_not_kept_after_it(world):
    frontend = Frontend(world.resolver(DEFAULT, "10.0.0.1"))
    query = dns.message.make_query("www.victim.test", "A")
    outcome = frontend.receive(query.to_wire(), CLIENT, Via.UDP)
    assert isinstance(outcome, Question)
    answer = resolved(world, frontend, outcome)
    wire = frontend.render(outcome.query, answer, Via.UDP)  # the reply leaves now
    rendered_under = frontend.answers.generation
    frontend.answers.clear()  # a reload, before the server got round to keeping it
    frontend.remember(outcome.wire, answer, wire, rendered_under)
    assert len(frontend.answers) == 0
    frontend.remember(outcome.wire, answer, wire, frontend.answers.generation)
    assert len(frontend.answers) == 1  # rendered under the current settings: kept


def test_acl_refuses_with_ede_even_for_cached_names(world):
    frontend = Frontend(world.resolver(DEFAULT, "10.0.0.1"))
    query = dns.message.make_query("www.victim.test", "A", use_edns=0)
    full_answer(world, frontend, query.to_wire())
    refused = frontend.receive(query.to_wire(), ("198.51.100.1", 53), Via.UDP)
    reply = dns.message.from_wire(refused)
    assert reply.rcode() == dns.rcode.REFUSED
    assert [o.code for o in reply.options if o.otype == dns.edns.OptionType.EDE] == [18]


def test_rd_clear_is_answered_from_cache_only(world):
    frontend = Frontend(world.resolver(DEFAULT, "10.0.0.1"), fast_path=False)
    query = dns.message.make_query("www.victim.test", "A")
    query.flags &= ~dns.flags.RD
    reply = dns.message.from_wire(frontend.receive(query.to_wire(), CLIENT, Via.UDP))
    assert reply.rcode() == dns.rcode.REFUSED and not world.exchanges
    full_answer(world, frontend, dns.message.make_query("www.victim.test", "A").to_wire())
    cached = dns.message.from_wire(frontend.receive(query.to_wire(), CLIENT, Via.UDP))
    assert cached.answer and not cached.flags & dns.flags.RD


def test_malformed_and_unsupported_queries(world):
    frontend = Frontend(world.resolver(DEFAULT, "10.0.0.1"))
    query = dns.message.make_query("www.victim.test", "A").to_wire()
    assert frontend.receive(query[:5], CLIENT, Via.UDP) is None
    formerr = frontend.receive(query[:14], CLIENT, Via.UDP)
    assert formerr[:2] == query[:2] and formerr[3] & 0x0F == dns.rcode.FORMERR
    axfr = dns.message.make_query("victim.test", "AXFR")
    assert dns.message.from_wire(frontend.receive(axfr.to_wire(), CLIENT, Via.TCP)).rcode() == (
        dns.rcode.REFUSED
    )
    for opcode in (dns.opcode.NOTIFY, dns.opcode.STATUS, dns.opcode.UPDATE):
        other = dns.message.make_query("www.victim.test", "SOA")
        other.set_opcode(opcode)
        reply = dns.message.from_wire(frontend.receive(other.to_wire(), CLIENT, Via.UDP))
        assert reply.rcode() == dns.rcode.NOTIMP and reply.opcode() == opcode
    assert not world.exchanges  # none of them reached the resolver


def test_servfail_carries_an_extended_error(world):
    world.down.update({"10.0.0.1"})
    frontend = Frontend(world.resolver(dataclasses.replace(DEFAULT), "10.0.0.1"))
    query = dns.message.make_query("www.victim.test", "A", use_edns=0)
    reply = dns.message.from_wire(full_answer(world, frontend, query.to_wire()))
    assert reply.rcode() == dns.rcode.SERVFAIL
    (ede,) = [o for o in reply.options if o.otype == dns.edns.OptionType.EDE]
    assert ede.code == 22 and "no reachable server" in ede.text
    assert len(frontend.answers) == 0  # failures are not replayed

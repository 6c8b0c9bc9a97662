"""Iterative resolution by the sans-I/O core, against in-process authoritative engines."""

from __future__ import annotations

import dataclasses

import dns.name
import dns.rcode
import dns.rdatatype

from poisonproof.resolver.defenses import DEFAULT, PRE_2008
from poisonproof.resolver.iterator import Ede, ResolverConfig
from tests.resolver.inprocess import texts

PLAIN = dataclasses.replace(DEFAULT, qname_minimisation=False)


def test_resolves_from_the_root_then_answers_from_cache(world):
    resolver = world.resolver(PLAIN, "10.0.0.1")
    answer = world.run(resolver, "www.victim.test")
    assert answer.rcode == dns.rcode.NOERROR and not answer.from_cache
    assert texts(answer) == ["www.victim.test. 300 IN A 192.0.2.80"]
    servers = [server for server, _, _ in world.questions()]
    assert servers == ["10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.3"]  # priming, then down
    sent = len(world.exchanges)
    world.clock.now += 100
    again = world.run(resolver, "www.victim.test")
    assert again.from_cache and len(world.exchanges) == sent
    assert again.answer[0].ttl == 300 - 100  # TTL decreases in the cache (less the RTTs)
    world.clock.now += 200
    world.run(resolver, "www.victim.test")
    assert len(world.exchanges) == sent + 1  # expired: asked again, straight at the zone


def test_cname_chain_across_zones_and_dname(world):
    resolver = world.resolver(PLAIN, "10.0.0.1")
    answer = world.run(resolver, "far.victim.test")
    assert texts(answer) == [
        "far.victim.test. 300 IN CNAME www.glueless.test.",
        "www.glueless.test. 120 IN A 198.51.100.9",
    ]
    dname = world.run(resolver, "www.old.victim.test")
    assert [dns.rdatatype.to_text(r.rdtype) for r in dname.answer] == ["DNAME", "CNAME", "A"]


def test_negative_answers_are_cached_with_soa(world):
    resolver = world.resolver(PLAIN, "10.0.0.1")
    nx = world.run(resolver, "nope.victim.test")
    assert nx.rcode == dns.rcode.NXDOMAIN and nx.authority[0].rdtype == dns.rdatatype.SOA
    nodata = world.run(resolver, "mail.victim.test", "AAAA")
    assert nodata.rcode == dns.rcode.NOERROR and not nodata.answer and nodata.authority
    sent = len(world.exchanges)
    below = world.run(resolver, "deeper.nope.victim.test")  # RFC 8020: from the cache
    assert below.rcode == dns.rcode.NXDOMAIN and len(world.exchanges) == sent
    assert world.run(resolver, "mail.victim.test", "AAAA").from_cache


def test_glueless_delegation_is_resolved(world):
    resolver = world.resolver(PLAIN, "10.0.0.1")
    answer = world.run(resolver, "www.glueless.test")
    assert texts(answer) == ["www.glueless.test. 120 IN A 198.51.100.9"]
    assert ("10.0.0.67", "www.glueless.test.", "A") in [
        (s, n.lower(), t) for s, n, t in world.questions()
    ]


def test_mutually_glueless_delegations_fail_fast(world):
    resolver = world.resolver(PLAIN, "10.0.0.1")
    answer = world.run(resolver, "www.loop1.test")
    assert answer.rcode == dns.rcode.SERVFAIL and answer.ede is not None
    assert len(world.exchanges) < 20


def test_nxns_referral_to_many_glueless_names_is_bounded(world):
    resolver = world.resolver(PLAIN, "10.0.0.1")
    answer = world.run(resolver, "x.many.test")
    assert answer.rcode == dns.rcode.SERVFAIL
    asked = {n.lower() for _, n, _ in world.questions() if "nowhere" in n.lower()}
    assert len(asked) <= ResolverConfig().max_ns_names_per_referral
    assert resolver.stats.get("ns_lookup_limit", 0) >= 1


def test_cname_loop_is_servfail(world):
    resolver = world.resolver(PLAIN, "10.0.0.1")
    answer = world.run(resolver, "loopa.victim.test")
    assert answer.rcode == dns.rcode.SERVFAIL and "loop" in answer.ede[1]


def test_upstream_query_limit_gives_servfail_with_ede(world):
    resolver = world.resolver(PLAIN, "10.0.0.1", config=ResolverConfig(max_upstream=2))
    answer = world.run(resolver, "www.victim.test")
    assert answer.rcode == dns.rcode.SERVFAIL
    assert "upstream queries" in answer.ede[1]


def test_qname_minimisation_hides_the_full_name_from_root_and_tld(world):
    resolver = world.resolver(DEFAULT, "10.0.0.1")
    answer = world.run(resolver, "a.b.c.victim.test")
    assert texts(answer) == ["a.b.c.victim.test. 300 IN A 192.0.2.7"]
    for server, name, _ in world.questions():
        if server in ("10.0.0.1", "10.0.0.2"):
            assert "a.b.c" not in name.lower()
    # and without it, the root sees the whole name
    world.exchanges.clear()
    full = world.resolver(PRE_2008, "10.0.0.1")
    world.run(full, "a.b.c.victim.test")
    assert any("a.b.c" in n.lower() for s, n, _ in world.questions() if s == "10.0.0.1")


def test_minimised_probes_pass_over_names_known_not_to_be_zone_cuts(world):
    resolver = world.resolver(DEFAULT, "10.0.0.1")
    world.run(resolver, "a.b.c.victim.test")
    probes = [(n.lower(), t) for s, n, t in world.questions() if s == "10.0.0.3"]
    assert probes == [
        ("c.victim.test.", "NS"),
        ("b.c.victim.test.", "NS"),
        ("a.b.c.victim.test.", "A"),
    ]  # both probes answered NODATA: neither name is a zone cut
    world.exchanges.clear()
    answer = world.run(resolver, "d.b.c.victim.test")
    assert texts(answer) == ["d.b.c.victim.test. 300 IN A 192.0.2.8"]
    assert [(n.lower(), t) for _, n, t in world.questions()] == [("d.b.c.victim.test.", "A")]
    assert resolver.stats["minimise_skipped"] == 2


def test_minimised_queries_that_go_unanswered_fall_back_to_the_full_name(world):
    """A zone's server that drops NS queries (a middlebox, a broken server): the minimised
    probes time out, and after `max_minimise_failures` of them the full name is asked
    (Unbound's relaxed mode), instead of the name failing as unreachable."""

    def drop_ns_probes(exchange, reply):
        query = exchange.query
        if query.server[0] == "10.0.0.3" and query.qtype == dns.rdatatype.NS:
            return None
        return reply

    world.tamper = drop_ns_probes
    resolver = world.resolver(DEFAULT, "10.0.0.1")
    answer = world.run(resolver, "a.b.c.victim.test")
    assert texts(answer) == ["a.b.c.victim.test. 300 IN A 192.0.2.7"]
    asked = [(n.lower(), t) for s, n, t in world.questions() if s == "10.0.0.3"]
    failures = ResolverConfig().max_minimise_failures
    assert asked == [("c.victim.test.", "NS")] * failures + [("a.b.c.victim.test.", "A")]
    assert resolver.stats["minimise_abandoned"] == 1
    # the parents still saw only the minimised names
    assert all("a.b.c" not in n.lower() for s, n, _ in world.questions() if s != "10.0.0.3")


def test_unanswered_full_queries_still_fail_as_unreachable(world):
    """The fallback uses the rounds a zone's servers get anyway: a server that answers
    nothing at all costs no more queries (or time) than before, and ends in SERVFAIL."""
    world.tamper = lambda exchange, reply: None if exchange.query.server[0] == "10.0.0.3" else reply

    def dead_server_questions(config: ResolverConfig) -> tuple[list[tuple[str, str]], float]:
        world.exchanges.clear()
        resolver = world.resolver(DEFAULT, "10.0.0.1", config=config)
        started = world.clock.now
        answer = world.run(resolver, "a.b.c.victim.test")
        assert answer.rcode == dns.rcode.SERVFAIL
        assert answer.ede[0] == Ede.NO_REACHABLE_AUTHORITY
        asked = [(n.lower(), t) for s, n, t in world.questions() if s == "10.0.0.3"]
        return asked, world.clock.now - started

    asked, waited = dead_server_questions(ResolverConfig())
    failures = ResolverConfig().max_minimise_failures
    assert asked[:failures] == [("c.victim.test.", "NS")] * failures
    assert set(asked[failures:]) == {("a.b.c.victim.test.", "A")}
    never = ResolverConfig(max_minimise_failures=1000)  # no fallback: probes to the end
    strict, strict_waited = dead_server_questions(never)
    assert set(strict) == {("c.victim.test.", "NS")}
    assert len(asked) == len(strict) and waited == strict_waited


def test_underscored_labels_are_asked_in_full_not_probed(world):
    resolver = world.resolver(DEFAULT, "10.0.0.1")
    answer = world.run(resolver, "_sip._udp.victim.test", "SRV")
    assert texts(answer) == ["_sip._udp.victim.test. 300 IN SRV 10 5 5060 www.victim.test."]
    asked = [(n.lower(), t) for s, n, t in world.questions() if s == "10.0.0.3"]
    assert asked == [("_sip._udp.victim.test.", "SRV")]  # no NS probe for _udp.victim.test
    # the parents still see only one label more than they serve
    assert all("_" not in n for s, n, _ in world.questions() if s != "10.0.0.3")


def test_dead_server_times_out_and_is_avoided_next_time(world):
    world.serve(
        "10.0.0.4",
        [
            world.engines["10.0.0.3"]
            .zones.find(__import__("dns.name").name.from_text("victim.test."))
            .source
        ],
    )
    world.down.add("10.0.0.3")
    resolver = world.resolver(PLAIN, "10.0.0.1")
    world.run(resolver, "www.victim.test")  # both NS names point at 10.0.0.3: all dead
    assert resolver.stats.get("timeouts", 0) >= 1


def test_truncated_reply_is_retried_over_tcp(world):
    import dns.flags
    import dns.message

    def truncate(exchange, reply):
        if exchange.tcp or reply is None or exchange.query.server[0] != "10.0.0.3":
            return reply
        message = dns.message.from_wire(reply)
        message.answer = []
        message.flags |= dns.flags.TC
        return message.to_wire()

    world.tamper = truncate
    resolver = world.resolver(PLAIN, "10.0.0.1")
    answer = world.run(resolver, "www.victim.test")
    assert texts(answer) == ["www.victim.test. 300 IN A 192.0.2.80"]
    assert world.exchanges[-1].tcp


def test_chain_that_ends_in_a_referral_restarts_at_its_target(world):
    """The TLD answers jump.test with a CNAME into a zone it delegates, plus the referral."""
    resolver = world.resolver(PLAIN, "10.0.0.1")
    answer = world.run(resolver, "jump.test")
    assert texts(answer) == [
        "jump.test. 86400 IN CNAME www.victim.test.",
        "www.victim.test. 300 IN A 192.0.2.80",
    ]
    assert world.questions()[-1][0] == "10.0.0.3"


def test_asking_for_the_cname_itself(world):
    resolver = world.resolver(PLAIN, "10.0.0.1")
    answer = world.run(resolver, "alias.victim.test", "CNAME")
    assert texts(answer) == ["alias.victim.test. 300 IN CNAME www.victim.test."]
    assert not answer.authority
    assert len([q for q in world.questions() if q[0] == "10.0.0.3"]) == 1


def test_lame_server_is_marked_and_the_other_one_used(world):
    import dns.message
    import dns.rrset

    world.serve(
        "10.0.0.5",
        [world.engines["10.0.0.3"].zones.find(dns.name.from_text("victim.test.")).source],
    )

    def two_servers(exchange, reply):
        message = dns.message.from_wire(reply) if reply else None
        if exchange.query.server[0] == "10.0.0.2" and message is not None:
            for rrset in message.additional:
                if rrset.name.to_text().lower() == "ns2.victim.test.":
                    message.additional = [
                        dns.rrset.from_text("ns1.victim.test.", 300, "IN", "A", "10.0.0.4"),
                        dns.rrset.from_text("ns2.victim.test.", 300, "IN", "A", "10.0.0.5"),
                    ]
            return message.to_wire()
        return reply

    # 10.0.0.4 serves only the TLD zone: asked about victim.test it refers upward (lame)
    world.serve(
        "10.0.0.4", [world.engines["10.0.0.2"].zones.find(dns.name.from_text("test.")).source]
    )
    world.tamper = two_servers
    resolver = world.resolver(PLAIN, "10.0.0.1")
    for i in range(6):
        assert world.run(resolver, f"n{i}.victim.test").rcode == dns.rcode.NXDOMAIN
    asked_lame = [q for q in world.questions() if q[0] == "10.0.0.4"]
    assert len(asked_lame) == 1  # asked once (unknown servers are explored), then avoided
    assert resolver.stats.get("lame", 0) == len(asked_lame)


def test_formerr_to_edns_falls_back_to_plain_dns(world):
    import dns.message
    import dns.rcode as rcode

    def no_edns(exchange, reply):
        query = dns.message.from_wire(exchange.query.wire)
        if exchange.query.server[0] == "10.0.0.3" and query.edns >= 0:
            response = dns.message.make_response(query)
            response.use_edns(False)
            response.set_rcode(rcode.FORMERR)
            return response.to_wire()
        return reply

    world.tamper = no_edns
    resolver = world.resolver(PLAIN, "10.0.0.1")
    assert texts(world.run(resolver, "www.victim.test")) == ["www.victim.test. 300 IN A 192.0.2.80"]
    assert resolver.infra.state(("10.0.0.3", 53)).no_edns


def test_forwarding_asks_the_forwarder_with_rd(world):
    import dns.flags
    import dns.message

    config = ResolverConfig(
        query_localhost=True,
        forwarders=((dns.name.from_text("victim.test."), (("10.0.0.3", 53),)),),
    )
    resolver = world.resolver(PLAIN, "10.0.0.1", config=config)
    assert texts(world.run(resolver, "www.victim.test")) == ["www.victim.test. 300 IN A 192.0.2.80"]
    assert [q[0] for q in world.questions()] == ["10.0.0.3"]
    assert dns.message.from_wire(world.exchanges[0].query.wire).flags & dns.flags.RD


def test_ipv4_off_leaves_no_server_to_ask(world):
    resolver = world.resolver(PLAIN, "10.0.0.1", config=ResolverConfig(ipv4=False))
    answer = world.run(resolver, "www.victim.test")
    assert answer.rcode == dns.rcode.SERVFAIL and not world.exchanges


def test_a_single_server_that_drops_one_query_is_asked_again(world):
    dropped = []

    def drop_first(exchange, reply):
        if exchange.query.server[0] == "10.0.0.3" and not dropped:
            dropped.append(exchange)
            return None
        return reply

    world.tamper = drop_first
    resolver = world.resolver(PLAIN, "10.0.0.1")
    answer = world.run(resolver, "www.victim.test")
    assert texts(answer) == ["www.victim.test. 300 IN A 192.0.2.80"]
    retry = [ex for ex in world.exchanges if ex.query.server[0] == "10.0.0.3"]
    assert len(retry) == 2 and retry[1].timeout > retry[0].timeout  # backed off


def test_trace_events_are_made_only_when_a_trace_is_asked_for(world, monkeypatch):
    import poisonproof.resolver.iterator as iterator

    described: list[object] = []
    real = iterator._describe
    monkeypatch.setattr(iterator, "_describe", lambda s: described.append(s) or real(s))
    quiet = world.resolver(PLAIN, "10.0.0.1")
    assert world.run(quiet, "www.victim.test").rcode == dns.rcode.NOERROR
    assert described == []  # nobody asked: no outcome text was written
    events: list[iterator.TraceEvent] = []
    traced = world.resolver(PLAIN, "10.0.0.1")
    assert world.run(traced, "www.victim.test", trace=events).rcode == dns.rcode.NOERROR
    assert len(events) == len(described) == 4  # priming, root, TLD, zone
    assert events[-1].question == "www.victim.test. A"
    assert events[-1].outcome.startswith("answer: www.victim.test. A 192.0.2.80")


def test_each_upstream_reply_is_vetted_and_parsed_once(world, monkeypatch):
    import poisonproof.resolver.outgoing as outgoing
    from poisonproof.wire import fast_parse

    vetted: list[bytes] = []
    real_budget = outgoing.within_budget
    monkeypatch.setattr(
        outgoing, "within_budget", lambda w, n: vetted.append(w) or real_budget(w, n)
    )
    parsed: list[bytes] = []
    real_parse = fast_parse.from_wire  # the resolver's parser (dnspython's behind it)
    monkeypatch.setattr(  # replies only (QR set): the engines parse the queries
        fast_parse,
        "from_wire",
        lambda w, *a, **k: (parsed.append(w) if w[2] & 0x80 else None) or real_parse(w, *a, **k),
    )
    resolver = world.resolver(DEFAULT, "10.0.0.1")
    answer = world.run(resolver, "far.victim.test")
    assert answer.rcode == dns.rcode.NOERROR
    replies = len(world.exchanges)
    assert replies >= 4
    assert len(vetted) == replies  # the compression-bomb test once per reply, in check()
    assert len(parsed) == replies  # and one parse, shared by check() and the iterator
    # the same datagrams (parsed with their 0x20 question name lowercased: case aside)
    assert sorted(w.lower() for w in parsed) == sorted(w.lower() for w in vetted)

"""MATCH, ADJUST and REPLY semantics on inline entries and on real corpus scenarios."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.tsigkeyring
import pytest

from poisonproof.replay.match import (
    build_query,
    build_reply,
    compare_answer,
    entry_matches,
    entry_message,
    first_mismatch,
    select_entry,
)
from poisonproof.replay.rpl import Entry, parse_file, parse_text
from tests.replay.corpus import require_scenario


def entry(body: str) -> Entry:
    """The entry of a one-step scenario built around `body` (the lines of the entry)."""
    text = f"CONFIG_END\nSCENARIO_BEGIN t\nSTEP 1 REPLY\nENTRY_BEGIN\n{body}ENTRY_END\n"
    step_entry = parse_text(text + "SCENARIO_END\n", "inline.rpl").steps[0].entry
    assert step_entry is not None
    return step_entry


def query(name: str, rdtype: str = "A", **kwargs: object) -> tuple[dns.message.Message, bytes]:
    message = dns.message.make_query(name, rdtype, **kwargs)  # type: ignore[arg-type]
    return message, message.to_wire()


def reply_to(template: Entry, message: dns.message.Message) -> dns.message.Message:
    wire = build_reply(template, message)
    assert wire is not None
    return dns.message.from_wire(wire)


REFERRAL = """MATCH opcode qtype qname
ADJUST copy_id
REPLY QR NOERROR
SECTION QUESTION
example.com. IN NS
SECTION AUTHORITY
example.com.\tIN NS\tns.example.com.
SECTION ADDITIONAL
ns.example.com.\tIN A\t1.2.3.4
"""


# --------------------------------------------------------------------------- matching


def test_opcode_qtype_qname_case_insensitive() -> None:
    template = entry(REFERRAL)
    assert entry_matches(template, *query("EXAMPLE.com.", "NS"))
    assert not entry_matches(template, *query("example.com.", "A"))
    assert not entry_matches(template, *query("www.example.com.", "NS"))
    update = dns.message.make_query("example.com.", "NS")
    update.set_opcode(dns.opcode.NOTIFY)
    assert not entry_matches(template, update, update.to_wire())
    assert first_mismatch(template, update) == "opcode: expected QUERY, got NOTIFY"


def test_qcase_is_case_sensitive() -> None:
    template = entry("MATCH opcode qtype qcase\nSECTION QUESTION\nwww.example.com. IN A\n")
    assert entry_matches(template, *query("www.example.com.", "A"))
    assert not entry_matches(template, *query("wWw.example.com.", "A"))
    message, _ = query("wWw.example.com.", "A")
    assert first_mismatch(template, message) == (
        "qcase: expected www.example.com., got wWw.example.com."
    )


def test_subdomain_accepts_the_name_and_below() -> None:
    template = entry("MATCH opcode subdomain\nSECTION QUESTION\nexample.com. IN NS\n")
    assert entry_matches(template, *query("example.com.", "A"))
    assert entry_matches(template, *query("a.b.EXAMPLE.com.", "MX"))
    assert not entry_matches(template, *query("example.net.", "A"))


def test_empty_question_rules() -> None:
    """Both questions empty match; only one empty does not (Deckard's matchpart)."""
    template = entry("MATCH opcode qtype\nSECTION QUESTION\n")
    assert not entry_matches(template, *query("a.", "A"))
    empty = dns.message.Message()
    assert entry_matches(template, empty, empty.to_wire())
    opcode_only = entry("MATCH opcode\nREPLY QR\n")
    assert entry_matches(opcode_only, *query("anything.example.", "TXT"))


def test_entry_without_match_line_is_a_catch_all() -> None:
    """iter_cycle.rpl's invalid server: no MATCH, answers SERVFAIL to everything."""
    template = entry("ADJUST copy_id copy_query\nREPLY QR SERVFAIL\n")
    assert entry_matches(template, *query("x.example.", "AAAA"))


def test_transport_match() -> None:
    template = entry("MATCH opcode TCP\n")
    message, wire = query("a.", "A")
    assert not entry_matches(template, message, wire)
    assert entry_matches(template, message, wire, tcp=True)
    udp = entry("MATCH UDP\n")
    assert entry_matches(udp, message, wire)
    assert not entry_matches(udp, message, wire, tcp=True)


def test_raw_query_entry_matches_its_bytes() -> None:
    message, wire = query("a.", "A")
    template = entry(f"RAW\n{wire.hex()}\n")
    assert entry_matches(template, message, wire)
    assert not entry_matches(template, message, wire[:-1] + b"\x02")


def test_select_entry_takes_the_first_match() -> None:
    text = (
        "CONFIG_END\nSCENARIO_BEGIN t\nRANGE_BEGIN 0 10\n"
        "ENTRY_BEGIN\nMATCH opcode qname\nSECTION QUESTION\nb.example. IN A\nENTRY_END\n"
        "ENTRY_BEGIN\nMATCH opcode subdomain\nSECTION QUESTION\nexample. IN A\nENTRY_END\n"
        "ENTRY_BEGIN\nMATCH opcode\nENTRY_END\n"
        "RANGE_END\nSTEP 1 NOTHING\nSCENARIO_END\n"
    )
    entries = parse_text(text).ranges[0].entries
    assert select_entry(entries, *query("b.example.")) is entries[0]
    assert select_entry(entries, *query("c.example.")) is entries[1]
    assert select_entry(entries, *query("c.test.")) is entries[2]
    assert select_entry(entries[:2], *query("c.test.")) is None


# --------------------------------------------------------------------------- replies


def test_copy_id_copies_id_and_name_case() -> None:
    message, _ = query("ExAmPlE.com.", "NS", use_edns=False)
    reply = reply_to(entry(REFERRAL), message)
    assert reply.id == message.id
    assert reply.question[0].name.to_text() == "ExAmPlE.com."
    assert reply.flags & 0xFFF0 & ~0x7800 == dns.flags.QR  # QR only, not RD from the query
    assert reply.rcode() == dns.rcode.NOERROR
    # dnspython compresses against the question, so the records take on its case (so does
    # Deckard, and so do real servers)
    authority = [r.to_text() for r in reply.authority]
    assert authority == ["ExAmPlE.com. 3600 IN NS ns.ExAmPlE.com."]
    assert [r.to_text().lower() for r in reply.additional] == ["ns.example.com. 3600 in a 1.2.3.4"]
    assert reply.edns == -1  # mirrors the query: no EDNS asked, none sent


def test_copy_id_copies_the_name_even_when_subdomain_matched() -> None:
    """Deckard's copy_id replaces the template's first question name with the query's."""
    template = entry(
        "MATCH opcode subdomain\nADJUST copy_id\nREPLY QR\nSECTION QUESTION\ncom. IN NS\n"
    )
    message, _ = query("www.example.com.", "A")
    reply = reply_to(template, message)
    assert reply.question[0].name == dns.name.from_text("www.example.com.")
    assert reply.question[0].rdtype == dns.rdatatype.NS


def test_copy_query_copies_the_whole_question() -> None:
    template = entry("MATCH opcode\nADJUST copy_id copy_query\nREPLY QR AA NXDOMAIN\n")
    message, _ = query("Nope.Example.", "MX")
    reply = reply_to(template, message)
    assert reply.question == message.question
    assert reply.question[0].name.to_text() == "Nope.Example."
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert reply.flags & dns.flags.AA


def test_edns_mirrors_the_query_under_adjust() -> None:
    message, _ = query("example.com.", "NS", want_dnssec=True)
    reply = reply_to(entry(REFERRAL), message)
    assert reply.edns == 0
    assert reply.ednsflags & dns.flags.DO


def test_unadjusted_template_keeps_its_own_edns() -> None:
    template = entry("MATCH opcode\nREPLY QR DO\nSECTION QUESTION\na. IN A\n")
    message, _ = query("a.", "A", use_edns=False)
    reply = reply_to(template, message)
    assert reply.id == 0  # no copy_id
    assert (reply.edns, reply.payload) == (0, 4096)
    assert reply.ednsflags & dns.flags.DO


def test_extended_rcode_forces_edns() -> None:
    template = entry("MATCH opcode\nADJUST copy_id copy_query\nREPLY QR BADVERS\n")
    message, _ = query("a.", "A", use_edns=False)
    reply = reply_to(template, message)
    assert reply.edns == 0
    assert reply.rcode() == dns.rcode.BADVERS


def test_do_not_answer() -> None:
    template = entry("MATCH opcode subdomain\nADJUST copy_id copy_query do_not_answer\n")
    assert build_reply(template, query("fail.net.")[0]) is None


def test_raw_reply_with_and_without_raw_id() -> None:
    message, _ = query("a.", "A")
    raw = "abcd81800000000000000000"
    plain = entry(f"MATCH opcode\nRAW\n{raw}\n")
    assert build_reply(plain, message) == bytes.fromhex(raw)
    patched = entry(f"MATCH opcode\nADJUST raw_id\nRAW\n{raw}\n")
    assert build_reply(patched, message) == message.id.to_bytes(2, "big") + bytes.fromhex(raw)[2:]


def test_tsig_signed_reply_verifies() -> None:
    secret = "c2VjcmV0c2VjcmV0c2VjcmV0"
    template = entry(f"MATCH opcode\nADJUST copy_id copy_query\nREPLY QR\nTSIG k. {secret}\n")
    message, _ = query("a.", "A")
    wire = build_reply(template, message)
    assert wire is not None
    keyring = dns.tsigkeyring.from_text({"k.": secret})
    assert dns.message.from_wire(wire, keyring=keyring).had_tsig


def test_build_query_uses_reply_words_as_query_flags() -> None:
    step = entry("REPLY RD DO\nSECTION QUESTION\nwww.example.com. IN A\n")
    parsed = dns.message.from_wire(build_query(step, 4242))
    assert parsed.id == 4242
    assert parsed.flags == dns.flags.RD
    assert parsed.ednsflags & dns.flags.DO and parsed.payload == 4096
    raw = entry("RAW\nb5c9ca3d50104320f4120000000000000000\n")
    assert build_query(raw, 1) == bytes.fromhex("b5c9ca3d50104320f4120000000000000000")


# --------------------------------------------------------------------------- answers

EXPECTED = """MATCH all
REPLY QR RD RA NOERROR
SECTION QUESTION
www.example.com. IN A
SECTION ANSWER
www.example.com. IN CNAME www.next.com.
www.next.com. IN A 10.20.30.40
www.next.com. IN A 10.20.30.41
"""


def answer(*records: str, flags: str = "QR RD RA", rcode: str = "NOERROR") -> dns.message.Message:
    text = f"id 1\nopcode QUERY\nrcode {rcode}\nflags {flags}\n;QUESTION\nwww.example.com. IN A\n"
    text += ";ANSWER\n" + "\n".join(records) + "\n;AUTHORITY\n;ADDITIONAL\n"
    return dns.message.from_text(text)


GOOD = (
    "www.next.com. 5 IN A 10.20.30.41",
    "WWW.example.com. 300 IN CNAME www.next.com.",
    "www.next.com. 5 IN A 10.20.30.40",
)


def test_answer_matches_in_any_order_ignoring_ttl_and_owner_case() -> None:
    assert compare_answer(entry(EXPECTED), answer(*GOOD)) is None


def test_answer_mismatches_are_one_line() -> None:
    expected = entry(EXPECTED)
    problem = compare_answer(expected, answer(*GOOD[:2]))
    assert problem is not None and "\n" not in problem
    assert problem.startswith("answer: expected [www.example.com. IN CNAME www.next.com.; ")
    assert problem.endswith(
        "got [www.next.com. IN A 10.20.30.41; WWW.example.com. IN CNAME www.next.com.]"
    )
    assert compare_answer(expected, answer(*GOOD, flags="QR RD")) == (
        "flags: expected QR RD RA, got QR RD"
    )
    assert compare_answer(expected, answer(*GOOD, rcode="SERVFAIL")) == (
        "rcode: expected NOERROR, got SERVFAIL"
    )


def test_all_compares_unwritten_sections_as_empty() -> None:
    """Deckard's code (not its guide) expands `all` to every section."""
    message = answer(*GOOD)
    message.authority = [dns.rrset.from_text("example.com.", 300, "IN", "NS", "ns.example.com.")]
    assert compare_answer(entry(EXPECTED), message) == (
        "authority: expected [], got [example.com. IN NS ns.example.com.]"
    )


def test_only_listed_elements_are_compared() -> None:
    lenient = entry(EXPECTED.replace("MATCH all", "MATCH opcode qname rcode"))
    assert compare_answer(lenient, answer(flags="QR")) is None


def test_ttl_is_compared_only_under_match_ttl() -> None:
    strict = entry(
        "MATCH answer ttl\nSECTION ANSWER\n"
        "a.example. 300 IN A 1.1.1.1\na.example. 60 IN A 1.1.1.2\n"
    )
    good = dns.message.make_response(dns.message.make_query("a.example.", "A"))
    good.answer = [
        dns.rrset.from_text("a.example.", 300, "IN", "A", "1.1.1.1"),
        dns.rrset.from_text("a.example.", 60, "IN", "A", "1.1.1.2"),
    ]
    assert compare_answer(strict, good, reply_wire=good.to_wire()) is None
    good.answer[1].ttl = 61
    problem = compare_answer(strict, good, reply_wire=good.to_wire())
    assert problem is not None and "a.example. 61 IN A 1.1.1.2" in problem


def test_raw_expected_answer_compares_bytes() -> None:
    expected = entry("RAW\n0001818000000000000000000\n".replace("0\n", "\n"))
    reply = dns.message.from_wire(bytes.fromhex("000181800000000000000000"))
    assert compare_answer(expected, reply) is None
    problem = compare_answer(expected, reply, reply_wire=b"\x00\x02" + reply.to_wire()[2:])
    assert problem == "raw: expected 000181800000000000000000, got 000281800000000000000000"


def test_answertypes_and_edns() -> None:
    expected = entry(EXPECTED.replace("MATCH all", "MATCH answertypes edns"))
    message = answer(*GOOD)
    assert compare_answer(expected, message) == "edns: expected version 0 payload 4096, got no EDNS"
    message.use_edns(0, 0, 4096)
    assert compare_answer(expected, message) is None
    message.answer = message.answer[:1]
    assert compare_answer(expected, message) == "answertypes: expected A CNAME, got A"


# --------------------------------------------------------------------------- corpus


def test_iter_minim_a_walk() -> None:
    """Replay iter_minim_a.rpl by hand: the resolver's queries, the scripted replies."""
    scenario = parse_file(require_scenario("iter_minim_a.rpl"))
    assert scenario.config.stub_addr == "127.0.0.10"
    assert scenario.config.query_minimization is True
    step = scenario.steps[0]
    client_query = dns.message.from_wire(build_query(step.entry, 7))  # type: ignore[arg-type]
    assert client_query.question[0].name == dns.name.from_text("www.example.com.")
    walk = [
        ("127.0.0.10", ".", "NS", "answer", "K.ROOT-SERVERS.NET."),
        ("127.0.0.10", "com.", "NS", "authority", "a.gtld-servers.net."),
        ("192.5.6.30", "example.com.", "NS", "authority", "ns.example.com."),
        ("1.2.3.4", "www.example.com.", "A", "answer", "10.20.30.40"),
    ]
    for address, name, rdtype, section, data in walk:
        rng = scenario.select_range(step.id, address)
        assert rng is not None and address in rng.addresses
        message, wire = query(name.upper(), rdtype, want_dnssec=True)
        message.flags &= ~dns.flags.RD
        chosen = select_entry(rng.entries, message, message.to_wire())
        assert chosen is not None, (address, name)
        reply = reply_to(chosen, message)
        assert reply.id == message.id
        assert reply.question[0].name.to_text() == name.upper()  # 0x20 case echoed
        assert str(getattr(reply, section)[0][0]).lower() == data.lower()
    # the resolver never asks the root for example.com. directly: no entry for it
    rng = scenario.select_range(1, "127.0.0.10")
    assert rng is not None
    assert select_entry(rng.entries, *query("example.com.", "A")) is None
    check = scenario.steps[-1].entry
    assert check is not None
    good = answer("www.example.com. 3600 IN A 10.20.30.40")
    assert compare_answer(check, good) is None
    assert compare_answer(check, answer()) == (
        "answer: expected [www.example.com. IN A 10.20.30.40], got []"
    )


def test_iter_badraw_sends_raw_bytes() -> None:
    scenario = parse_file(require_scenario("iter_badraw.rpl"))
    first = scenario.steps[0]
    assert first.entry is not None and first.entry.raw is not None
    assert build_query(first.entry, 1) == bytes.fromhex("00000000700240004aa200000204059801010402")
    raw_steps = [s for s in scenario.steps if s.entry is not None and s.entry.raw is not None]
    assert len(raw_steps) > 3000


def test_iter_timeouted_ns_has_a_silent_server() -> None:
    scenario = parse_file(require_scenario("iter_timeouted_ns.rpl"))
    silent = [e for r in scenario.ranges for e in r.entries if "do_not_answer" in e.adjust]
    assert len(silent) == 1
    rng = scenario.select_range(15, "1.1.1.1")
    assert rng is not None and rng.start == 11
    chosen = select_entry(rng.entries, *query("x.fail.net.", "A"))
    assert chosen is silent[0]
    assert build_reply(chosen, query("x.fail.net.", "A")[0]) is None


def test_module_workarounds_disable_0x20_uses_qcase() -> None:
    scenario = parse_file(require_scenario("module_workarounds_disable_0x20.rpl"))
    rng = scenario.ranges[0]
    name = scenario.steps[0].entry.question[0].name.to_text()  # type: ignore[union-attr]
    assert select_entry(rng.entries, *query(name, "A")) is rng.entries[0]
    mixed = name[:1].upper() + name[1:]
    assert select_entry(rng.entries, *query(mixed, "A")) is not rng.entries[0]


def test_iter_cycle_catch_all_server() -> None:
    scenario = parse_file(require_scenario("iter_cycle.rpl"))
    rng = scenario.select_range(1, "1.2.3.1")
    assert rng is not None and rng.addresses == ("1.2.3.1",)
    message, wire = query("anything.example.", "NS")
    chosen = select_entry(rng.entries, message, wire)
    assert chosen is not None
    reply = reply_to(chosen, message)
    assert reply.rcode() == dns.rcode.SERVFAIL
    assert reply.question == message.question


def test_val_minimal_baddsdigesttype_trust_anchor() -> None:
    scenario = parse_file(require_scenario("val_minimal_baddsdigesttype.rpl"))
    (anchor,) = scenario.config.trust_anchor_records()
    assert anchor.rdtype == dns.rdatatype.DS
    assert anchor.rdata is not None and anchor.rdata.to_wire()[3] == 1  # digest type 1
    assert scenario.config.override_time is not None


@pytest.mark.parametrize("name", ["iter_nottl.rpl"])
def test_config_remarks_after_values(name: str) -> None:
    """`query-minimization: off ; remark` and `features: min_ttl = 5 ; remark`."""
    config = parse_file(require_scenario(name)).config
    assert config.query_minimization is False
    assert config.features["min_ttl"] == "5"


def test_entry_message_round_trips() -> None:
    message = entry_message(entry(EXPECTED), 9)
    parsed = dns.message.from_wire(message.to_wire())
    assert parsed.id == 9
    assert len(parsed.answer) == 2  # the two A records merge into one RRset on parse

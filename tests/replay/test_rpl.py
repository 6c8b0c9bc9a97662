"""The .rpl reader on small inline scenarios: every construct, and errors as file:line."""

from __future__ import annotations

import calendar
from pathlib import Path

import dns.flags
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest

from poisonproof.replay.rpl import (
    DEFAULT_TTL,
    RplError,
    StepKind,
    parse_file,
    parse_record,
    parse_text,
)

SCENARIO = """\
; a header comment
do-ip6: no
\tquery-minimization: off ; remark kept by Deckard, the first word counts
\tharden-glue: "no"
\tstub-addr: 193.0.14.129 \t# K.ROOT-SERVERS.NET.
\ttrust-anchor: "example.com. 3600 IN DS 2854 3 1 46e4ffc6e9a4793b488954bd3f0cc6af0dfb201b"
\tval-override-date: "20070916134226"
features: min_ttl = 5; max_ttl = 600
feature-list: policy=policy:add(policy.all(policy.DENY))
domain-insecure: net.
forward-zone:
\tname: "."
\tforward-addr: 192.0.2.1
CONFIG_END

SCENARIO_BEGIN\tAn inline scenario; with a comment

RANGE_BEGIN 0 100 193.0.14.129 ; root
\tADDRESS 2001:07fd:0::1
ENTRY_BEGIN
MATCH opcode qtype qname
ADJUST copy_id
REPLY QR AA NOERROR
SECTION QUESTION
. IN NS
SECTION ANSWER
.\tIN NS\tK.ROOT-SERVERS.NET.
SECTION ADDITIONAL
K.ROOT-SERVERS.NET.\t172800 IN A\t193.0.14.129
ENTRY_END

ENTRY_BEGIN
MANDATORY
MATCH opcode subdomain
ADJUST copy_id copy_query
FLAGS QR RD
REPLY NXDOMAIN DO
SECTION QUESTION
fail.net\tA
SECTION ANSWER
fail.net\t10\tA\t1.1.1.2
$TTL 60
$ORIGIN example.
www IN 120 CNAME host
host IN A 10.0.0.1
mx\tMX 10 ( mail
\t\t)
txt\tTXT "a; b" "c#d"
ENTRY_END
RANGE_END

RANGE_BEGIN 101 200
ENTRY_BEGIN
ADJUST raw_id
TSIG hmac.key. c2VjcmV0
SECTION QUESTION
example. IN A
RAW
0000 8180
00010000 00000000
ENTRY_END
RANGE_END

STEP 1 QUERY
ENTRY_BEGIN
REPLY RD DO
SECTION QUESTION
www.example.com. IN A
ENTRY_END

STEP 5 TIME_PASSES ELAPSE 3600
STEP 7 REPLY
ENTRY_BEGIN
MATCH opcode qtype qname
ADJUST copy_id
REPLY QR SERVFAIL
SECTION QUESTION
x.example. A
ENTRY_END
STEP 8 NOTHING
STEP 9 CHECK_OUT_QUERY
ENTRY_BEGIN
MATCH qname qtype
SECTION QUESTION
ns.example.net IN AAAA
ENTRY_END

STEP 10 CHECK_ANSWER ; trailing remark
ENTRY_BEGIN
MATCH all TCP ttl
REPLY QR RD RA BADVERS
SECTION QUESTION
www.example.com. IN A
SECTION ANSWER
SECTION AUTHORITY
ENTRY_END

SCENARIO_END
"""


@pytest.fixture(scope="module")
def scenario():
    return parse_text(SCENARIO, "inline.rpl")


def test_config_kept_generically_in_order(scenario) -> None:
    config = scenario.config
    keys = [option.key for option in config.options]
    assert keys[:4] == ["do-ip6", "query-minimization", "harden-glue", "stub-addr"]
    assert config.options[0].line == 2
    forward = [o for o in config.options if o.key == "forward-addr"]
    assert forward[0].section == "forward-zone"
    assert [o.text for o in config.options if o.key == "name"] == ["."]
    harden = next(o for o in config.options if o.key == "harden-glue")
    assert harden.value == '"no"'
    assert harden.text == "no"


def test_config_helpers(scenario) -> None:
    config = scenario.config
    assert config.do_ip6 is False
    assert config.do_ip4 is True
    assert config.query_minimization is False
    assert config.harden_glue is False
    assert config.do_not_query_localhost is True
    assert config.stub_addr == "193.0.14.129"
    assert config.forward_addrs == ("192.0.2.1",)
    assert config.domain_insecure == (dns.name.from_text("net."),)
    assert config.features == {"min_ttl": "5", "max_ttl": "600"}
    assert config.feature_list == (("policy", "policy:add(policy.all(policy.DENY))"),)
    assert config.override_time == calendar.timegm((2007, 9, 16, 13, 42, 26, 0, 0, 0))
    (anchor,) = config.trust_anchor_records()
    assert anchor.name == dns.name.from_text("example.com.")
    assert anchor.rdtype == dns.rdatatype.DS
    assert anchor.rdata is not None
    assert anchor.rdata.key_tag == 2854


def test_override_timestamp_and_bad_flag() -> None:
    text = 'val-override-timestamp: "1442323400"\ndo-ip6: maybe\nCONFIG_END\n'
    scenario = parse_text(text + "SCENARIO_BEGIN t\nSTEP 1 NOTHING\nSCENARIO_END\n", "h.rpl")
    assert scenario.config.override_time == 1442323400
    with pytest.raises(RplError, match=r"^h\.rpl:2: do-ip6: expected yes or no"):
        _ = scenario.config.do_ip6


def test_title_ranges_and_addresses(scenario) -> None:
    assert scenario.title == "An inline scenario"
    first, second = scenario.ranges
    assert (first.start, first.end, first.line) == (0, 100, 18)
    assert first.addresses == ("193.0.14.129", "2001:7fd::1")
    assert second.addresses == ()
    assert first.eligible(50, "2001:7fd::1")
    assert not first.eligible(101, "193.0.14.129")
    assert second.eligible(150, "10.9.9.9")
    assert scenario.select_range(10, "2001:07fd::1") is first
    assert scenario.select_range(10, "10.9.9.9") is first  # unknown address: any range
    assert scenario.select_range(150, "193.0.14.129") is second  # lists no address: any
    assert scenario.select_range(300, "193.0.14.129") is None
    assert scenario.select_range(150, "10.9.9.9") is second


def test_entry_header_words(scenario) -> None:
    root, other = scenario.ranges[0].entries
    assert root.match == {"opcode", "qtype", "qname"}
    assert root.adjust == {"copy_id"}
    assert root.flags == dns.flags.QR | dns.flags.AA
    assert root.rcode == dns.rcode.NOERROR
    assert root.opcode == dns.opcode.QUERY
    assert not root.dnssec_ok
    assert root.sections == {"question", "answer", "additional"}
    assert other.mandatory
    assert other.flags == dns.flags.QR | dns.flags.RD  # FLAGS is an alias of REPLY
    assert other.rcode == dns.rcode.NXDOMAIN
    assert other.dnssec_ok
    assert other.adjust == {"copy_id", "copy_query"}


def test_records_defaults_and_directives(scenario) -> None:
    root, other = scenario.ranges[0].entries
    (question,) = root.question
    assert question.rdata is None
    assert question.rdclass.name == "IN"
    ns = root.answer[0]
    assert ns.ttl == DEFAULT_TTL
    assert str(ns.rdata) == "K.ROOT-SERVERS.NET."
    assert root.additional[0].ttl == 172800
    fail_q = other.question[0]
    assert fail_q.name == dns.name.from_text("fail.net.")  # relative to the root origin
    fail, cname, host, mx, txt = other.answer
    assert (fail.ttl, fail.rdtype) == (10, dns.rdatatype.A)
    assert cname.name == dns.name.from_text("www.example.")
    assert cname.ttl == 120  # class before TTL
    assert str(cname.rdata) == "host.example."  # rdata names made absolute
    assert host.ttl == 60  # $TTL
    assert str(mx.rdata) == "10 mail.example."  # parentheses across lines
    assert mx.line == 46
    assert str(txt.rdata) == '"a; b" "c#d"'  # comment characters inside quotes


def test_raw_tsig_and_missing_match(scenario) -> None:
    (entry,) = scenario.ranges[1].entries
    assert entry.raw == bytes.fromhex("000081800001000000000000")  # lines joined
    assert entry.tsig is not None
    assert (entry.tsig.keyname, entry.tsig.secret) == ("hmac.key.", "c2VjcmV0")
    assert not entry.has_match_line
    assert entry.match_fields == frozenset()


def test_steps(scenario) -> None:
    steps = scenario.steps
    assert [s.id for s in steps] == [1, 5, 7, 8, 9, 10]
    kinds = [s.kind for s in steps]
    assert kinds == [
        StepKind.QUERY,
        StepKind.TIME_PASSES,
        StepKind.REPLY,
        StepKind.NOTHING,
        StepKind.CHECK_OUT_QUERY,
        StepKind.CHECK_ANSWER,
    ]
    query = steps[0].entry
    assert query is not None and query.flags == dns.flags.RD and query.dnssec_ok
    assert not query.has_match_line
    assert steps[1].elapse == 3600 and steps[1].entry is None
    assert steps[3].entry is None
    check = steps[5].entry
    assert check is not None
    assert check.rcode == dns.rcode.BADVERS
    assert check.match == {"all", "tcp", "ttl"}
    assert check.match_fields == {
        "opcode",
        "qtype",
        "qname",
        "flags",
        "rcode",
        "answer",
        "authority",
        "additional",
        "tcp",
        "ttl",
    }
    assert check.sections == {"question", "answer", "authority"}
    assert check.answer == ()


def test_question_expands_to_qtype_qname() -> None:
    text = "CONFIG_END\nSCENARIO_BEGIN t\nSTEP 1 CHECK_ANSWER\nENTRY_BEGIN\nMATCH question rcode\n"
    text += "SECTION QUESTION\na. IN A\nENTRY_END\nSCENARIO_END\n"
    entry = parse_text(text).steps[0].entry
    assert entry is not None
    assert entry.match_fields == {"qtype", "qname", "rcode"}


def test_parse_record_forms() -> None:
    assert parse_record("a. A 1.2.3.4", 1, question=False).ttl == DEFAULT_TTL
    assert parse_record("a. 5 IN A 1.2.3.4", 1, question=False).ttl == 5
    assert parse_record("a. CH 5 TXT x", 1, question=False).rdclass.name == "CH"
    assert parse_record("a. ANY", 1, question=True).rdtype == dns.rdatatype.ANY
    assert parse_record("a. IN ANY", 1, question=True).rdclass.name == "IN"
    assert parse_record("@ IN NS", 1, question=True).name == dns.name.root
    with pytest.raises(ValueError, match="has no data"):
        parse_record("a. IN A", 1, question=False)


def test_ds_with_inconsistent_digest_is_kept_as_generic_rdata() -> None:
    """val_minimal_baddsdigesttype.rpl: a SHA-1 digest type with a SHA-256 digest."""
    digest = "E7B1EB56D7D5791B3D45630FEAA9C823DB84B385ACEEAC5F44DD08885C36700F"
    record = parse_record(f".\t\t\tIN DS 49060 RSASHA256 1 {digest}", 3, question=False)
    assert record.rdata is not None
    assert record.rdata.to_wire() == bytes.fromhex(f"bfa40801{digest}")


def _wrap(body: str) -> str:
    return "stub-addr: 1.2.3.4\nCONFIG_END\nSCENARIO_BEGIN t\n" + body + "SCENARIO_END\n"


@pytest.mark.parametrize(
    ("body", "line", "what"),
    [
        ("STEP 1 QUERY\nENTRY_BEGIN\nSECTION ANSWER\na. IN A 1.2.3\nENTRY_END\n", 7, "bad record"),
        ("STEP 1 QUERY\nENTRY_BEGIN\nMATCH opcode qmagic\nENTRY_END\n", 6, "unknown MATCH"),
        ("STEP 1 QUERY\nENTRY_BEGIN\nADJUST copy_all\nENTRY_END\n", 6, "unknown ADJUST"),
        ("STEP 1 QUERY\nENTRY_BEGIN\nREPLY QR WHAT\nENTRY_END\n", 5, "unknown REPLY word"),
        ("STEP 1 QUERY\nENTRY_BEGIN\nREPLY NXDOMAIN SERVFAIL\nENTRY_END\n", 5, "conflicting"),
        ("STEP 1 QUERY\nENTRY_BEGIN\nRAW\nabc\nENTRY_END\n", 5, "RAW is not hex"),
        ("STEP 1 QUERY\nENTRY_BEGIN\nSECTION QUESTION\na. IN A\n", 8, "SCENARIO_END before"),
        ("STEP 1 QUERY\nENTRY_BEGIN\nSECTION QUESTION\nSTEP 2 NOTHING\n", 7, "before ENTRY_END"),
        ("STEP 1 QUERY\nSTEP 2 NOTHING\n", 4, "needs an ENTRY"),
        ("STEP 1 NOTHING\nSTEP 1 NOTHING\n", 5, "already defined on line 4"),
        ("STEP 1 DANCE\n", 4, "unsupported step type"),
        ("STEP 1 TIME_PASSES ELAPSE soon\n", 4, "not a number"),
        ("RANGE_BEGIN 0 10\nADDRESS 1.2.3.400\nRANGE_END\n", 5, "not an IP address"),
        ("RANGE_BEGIN 10 0\nRANGE_END\n", 4, "start after end"),
        ("RANGE_BEGIN 0 10\nENTRY_BEGIN\nbogus line\nENTRY_END\nRANGE_END\n", 6, "expected MATCH"),
        ("$INCLUDE other.zone\n", 4, "unsupported directive"),
        ("what is this\n", 4, "expected RANGE_BEGIN"),
        # found by the fuzzer: a DS dnspython refuses, with no "DS" word to find its data by
        (
            'STEP 1 QUERY\nENTRY_BEGIN\nSECTION ANSWER\ntx IN DS"2854 3 1 46e4"\nENTRY_END\n',
            7,
            "bad record",
        ),
        (
            "STEP 1 QUERY\nENTRY_BEGIN\nSECTION ANSWER\nx. IN DS 70000 8 1 AB\nENTRY_END\n",
            7,
            "bad record",
        ),
        ("STEP 1 QUERY\nENTRY_BEGIN\nSECTION ANSWER\nx. IN DS 1 8\nENTRY_END\n", 7, "bad record"),
        (
            "STEP 1 NOTHING\nENTRY_BEGIN\nENTRY_END\nENTRY_BEGIN\nENTRY_END\n",
            7,
            "more than one entry",
        ),
    ],
)
def test_errors_name_file_and_line(body: str, line: int, what: str) -> None:
    with pytest.raises(RplError, match=what) as caught:
        parse_text(_wrap(body), "bad.rpl")
    assert str(caught.value).startswith(f"bad.rpl:{line}: ")
    assert caught.value.line == line


def test_config_line_without_colon() -> None:
    with pytest.raises(RplError, match=r"^c\.rpl:2: expected 'key: value'"):
        parse_text("stub-addr: 1.2.3.4\nnonsense here\nCONFIG_END\n", "c.rpl")


def test_text_after_scenario_end() -> None:
    with pytest.raises(RplError, match=r"^x\.rpl:6: text after SCENARIO_END"):
        parse_text(_wrap("STEP 1 NOTHING\n") + "STEP 2 NOTHING\n", "x.rpl")


def test_unexpected_end_of_file() -> None:
    text = "CONFIG_END\nSCENARIO_BEGIN t\nSTEP 1 QUERY\nENTRY_BEGIN\nSECTION QUESTION\n"
    with pytest.raises(RplError, match=r"^e\.rpl:5: unexpected end of file, expected ENTRY_END"):
        parse_text(text, "e.rpl")


def test_header_is_optional() -> None:
    scenario = parse_text("SCENARIO_BEGIN bare\nSTEP 1 NOTHING\nSCENARIO_END\n")
    assert scenario.config.options == ()
    assert scenario.title == "bare"


def test_parse_file_reads_and_reports_path(tmp_path: Path) -> None:
    path = tmp_path / "one.rpl"
    path.write_text(_wrap("STEP 1 NOTHING\n"))
    assert parse_file(path).path == str(path)
    with pytest.raises(RplError, match="cannot read"):
        parse_file(tmp_path / "missing.rpl")

"""Write the seed corpus of every fuzz target from real messages and zones.

    .venv/bin/python fuzz/make_corpus.py

Owns: `fuzz/corpus/<target>/` seed files: client queries as dnspython and dig build them
(frontend, auth), replies our authoritative engine really gives for the test zones, and
forged ones in the shape of the lab's attacks (scrubber), the project's own zone files
and small edits of them (zone), and small scenarios written here in the .rpl syntax
(rpl). File names are the SHA-1 of the content, as libFuzzer names its inputs.
Must never: copy Deckard's scenarios (they are not ours to commit) or write outside
`fuzz/corpus/`.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from poisonproof.auth.engine import AuthEngine
from poisonproof.auth.zones import load_zones
from poisonproof.net.base import Via

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CORPUS = HERE / "corpus"
DATA_ZONES = ROOT / "src" / "poisonproof" / "data" / "zones"
TEST_ZONES = ROOT / "tests" / "resolver" / "zones"


class Clock:
    def monotonic(self) -> float:
        return 0.0

    def wall(self) -> float:
        return 1_800_000_000.0


def _query(
    name: str,
    rdtype: str = "A",
    *,
    edns: int = -1,
    do: bool = False,
    rd: bool = True,
    rdclass: str = "IN",
    opcode: int = dns.opcode.QUERY,
    options: list[dns.edns.Option] | None = None,
    payload: int = 1232,
    qid: int = 4660,
) -> bytes:
    query = dns.message.make_query(
        name,
        rdtype,
        rdclass,
        use_edns=edns if edns >= 0 else None,
        want_dnssec=do,
        payload=payload,
        options=options,
    )
    if edns < 0 and not do:
        query.use_edns(False)
    query.id = qid
    if not rd:
        query.flags &= ~dns.flags.RD
    query.set_opcode(opcode)
    return query.to_wire()


def client_queries(names: list[str]) -> list[bytes]:
    """Queries a client could send: ordinary ones and the odd ones the engines refuse."""
    out = []
    for name in names:
        out += [_query(name), _query(name, "AAAA", edns=0), _query(name, "ANY", do=True)]
    first = names[0]
    cookie = dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"\x01" * 8)
    out += [
        _query(first, "A", edns=0, do=True, payload=4096),
        _query(first, "A", edns=1),
        _query(first, "A", rd=False),
        _query(first, "AXFR"),
        _query(first, "TXT", rdclass="CH"),
        _query(first, "OPT"),
        _query(first, "A", opcode=dns.opcode.NOTIFY),
        _query(first, "A", edns=0, options=[cookie]),
        _query(first, "A", payload=512, edns=0),
    ]
    base = out[0]
    out += [
        base[:12],  # header only
        base[:-3],  # cut in the question
        base[:4] + struct.pack("!4H", 2, 0, 0, 0) + base[12:] + base[12:],  # two questions
        base[:12] + b"\xc0\x0c\x00\x01\x00\x01",  # a name pointing at itself
        base[:4] + struct.pack("!4H", 1, 65535, 65535, 65535) + base[12:],  # absurd counts
    ]
    return out


def frontend_seeds() -> list[bytes]:
    """Byte 0: bit 0 a stranger's address, bit 1 TCP (see `targets.frontend`)."""
    names = [
        "www.example",
        "alias.example",
        "loop1.example",
        "nx.example",
        "big.example",
        "sub.nx.example",
        "unknown.test",
        "WwW.ExAmPlE",
    ]
    seeds = []
    for i, wire in enumerate(client_queries(names)):
        seeds.append(bytes([0 if i % 5 else 2]) + wire)
    seeds += [b"\x01" + _query("www.example"), b"\x03" + _query("big.example", "TXT")]
    seeds.append(b"\x00" + _query("big.example", "TXT"))
    return seeds


def auth_seeds() -> list[bytes]:
    """Byte 0: bit 0 TCP (see `targets.auth`)."""
    names = [
        "www.bank.example",
        "portal.bank.example",
        "x.cdn.bank.example",
        "nope.bank.example",
        "big.bank.example",
        "bank.example",
        "example",
        "other.test",
    ]
    seeds = [bytes([i % 3 == 0]) + w for i, w in enumerate(client_queries(names))]
    seeds.append(b"\x00" + _query("big.bank.example", "TXT"))
    seeds.append(b"\x01" + _query("big.bank.example", "TXT"))
    return seeds


def scrubber_seeds() -> list[bytes]:
    """Byte 0: labels kept of the question name for the server's zone; byte 1: bailiwick
    rules off when odd. Replies are the test world's real ones and forged ones."""
    zones = {
        ".": ["root.zone"],
        "test.": ["test.zone"],
        "victim.test.": ["victim.zone"],
        "evil.test.": ["evil.zone"],
    }
    seeds = []
    questions = [
        (".", "www.victim.test", "A"),
        (".", ".", "NS"),
        ("test.", "www.victim.test", "A"),
        ("test.", "x.many.test", "A"),
        ("test.", "jump.test", "A"),
        ("test.", "nope.test", "A"),
        ("victim.test.", "www.victim.test", "A"),
        ("victim.test.", "far.victim.test", "A"),
        ("victim.test.", "www.old.victim.test", "A"),
        ("victim.test.", "nope.victim.test", "A"),
        ("victim.test.", "mail.victim.test", "AAAA"),
        ("victim.test.", "loopa.victim.test", "A"),
        ("victim.test.", "victim.test", "NS"),
        ("evil.test.", "www.evil.test", "A"),
    ]
    for zone, name, rdtype in questions:
        engine = AuthEngine(load_zones([str(TEST_ZONES / f) for f in zones[zone]]), Clock())
        reply = engine.handle(_query(name, rdtype, edns=0), ("127.0.0.1", 1), Via.TCP)
        assert reply is not None
        labels = len(dns.name.from_text(zone).labels) - 1
        seeds.append(bytes([labels, 0]) + reply)
        seeds.append(bytes([labels, 1]) + reply)
    for forged in forged_replies():
        seeds.append(bytes([2, 0]) + forged)
    return seeds


def forged_replies() -> list[bytes]:
    """Replies in the shape of the lab's attacks and of hostile servers."""
    qname = "x1234.victim.test."
    out = []
    query = dns.message.make_query(qname, "A")
    # Kaminsky (a): a referral for the whole zone to the attacker
    a = dns.message.make_response(query)
    a.authority = [dns.rrset.from_text("victim.test.", 86400, "IN", "NS", "ns.evil.test.")]
    a.additional = [dns.rrset.from_text("ns.evil.test.", 86400, "IN", "A", "10.0.0.66")]
    out.append(a.to_wire())
    # Kaminsky (b): an answer with an in-bailiwick override
    b = dns.message.make_response(query)
    b.flags |= dns.flags.AA
    b.answer = [dns.rrset.from_text(qname, 300, "IN", "A", "10.0.0.66")]
    b.authority = [dns.rrset.from_text("victim.test.", 86400, "IN", "NS", "ns1.victim.test.")]
    b.additional = [
        dns.rrset.from_text("ns1.victim.test.", 86400, "IN", "A", "10.0.0.66"),
        dns.rrset.from_text("www.bank.example.", 86400, "IN", "A", "10.0.0.66"),
    ]
    out.append(b.to_wire())
    # an out-of-bailiwick CNAME target with its answer attached
    c = dns.message.make_response(query)
    c.flags |= dns.flags.AA
    c.answer = [
        dns.rrset.from_text(qname, 300, "IN", "CNAME", "www.bank.example."),
        dns.rrset.from_text("www.bank.example.", 300, "IN", "A", "10.0.0.66"),
    ]
    out.append(c.to_wire())
    # a DNAME with a conflicting CNAME, and a referral upwards
    d = dns.message.make_response(query)
    d.flags |= dns.flags.AA
    d.answer = [
        dns.rrset.from_text("victim.test.", 300, "IN", "DNAME", "evil.test."),
        dns.rrset.from_text(qname, 300, "IN", "CNAME", "elsewhere.example."),
    ]
    out.append(d.to_wire())
    e = dns.message.make_response(query)
    e.authority = [dns.rrset.from_text(".", 86400, "IN", "NS", "a.root.test.")]
    out.append(e.to_wire())
    # a CNAME out of the zone, then NXDOMAIN (found by the property tests: once cached
    # as a denial of the target)
    g = dns.message.make_response(query)
    g.flags |= dns.flags.AA
    g.set_rcode(dns.rcode.NXDOMAIN)
    g.answer = [dns.rrset.from_text(qname, 300, "IN", "CNAME", "www.bank.example.")]
    out.append(g.to_wire())
    # NXNSAttack: a referral to many glueless names
    f = dns.message.make_response(query)
    f.authority = [
        dns.rrset.from_text(
            "sub.victim.test.", 300, "IN", "NS", *[f"ns{i}.nowhere.evil.test." for i in range(40)]
        )
    ]
    out.append(f.to_wire())
    return out


def zone_seeds() -> list[bytes]:
    """The project's zone files and small variants (every directive we support)."""
    files = [*sorted(DATA_ZONES.glob("*.zone")), *sorted(TEST_ZONES.glob("*.zone"))]
    seeds = [f.read_bytes() for f in files if f.stat().st_size < 8192]
    small = (TEST_ZONES / "victim.zone").read_bytes()
    seeds += [
        small.replace(b"$TTL", b"; $TTL"),
        small + b'\nwild\t IN TXT ( "multi"\n  "line" )\n',
        small + b"\n*.w A 192.0.2.1\nsub NS ns.sub\nns.sub A 192.0.2.2\n",
        small + b"\n$ORIGIN other.\nx A 192.0.2.3\n",
        small + b"\n$GENERATE 1-4 h$ A 192.0.2.$\n",
        b"@" + small,  # `targets.zone`: a leading @ loads with origin example.
        b"@ SOA ns h 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n",
        # crashes the fuzzer found (see tests/auth/test_fuzz_regressions.py)
        b"",
        small.replace(b"@        SOA", b"@!       SOA", 1),
        small + b"\nwww CNAME alias\n",
        b"$ORIGIN example.\n$TTL 60\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nns AAAA ::1\n"
        b'a CAA 0 issue "x"\nb SRV 1 2 3 ns\nc DS 1 8 2 ' + b"ab" * 32 + b"\nd NSEC e A RRSIG\n",
    ]
    return seeds


RPL_HEADER = "stub-addr: 192.0.2.1\nquery-minimization: off\nCONFIG_END\n\n"


def rpl_seeds() -> list[bytes]:
    """Small scenarios written here, one construct or so each."""
    entry = (
        "ENTRY_BEGIN\nMATCH opcode qtype qname\nADJUST copy_id\nREPLY QR AA NOERROR\n"
        "SECTION QUESTION\nwww.example. IN A\nSECTION ANSWER\nwww.example. IN A 192.0.2.1\n"
        "ENTRY_END\n"
    )
    bodies = [
        "STEP 1 NOTHING\n",
        "RANGE_BEGIN 0 100\n\tADDRESS 192.0.2.1\n" + entry + "RANGE_END\n",
        "STEP 1 QUERY\nENTRY_BEGIN\nREPLY RD\nSECTION QUESTION\nwww.example. IN A\nENTRY_END\n",
        "STEP 2 CHECK_ANSWER\n" + entry,
        "STEP 3 TIME_PASSES ELAPSE 60\n",
        "STEP 4 REPLY\n" + entry.replace("AA NOERROR", "SERVFAIL"),
        "STEP 5 CHECK_OUT_QUERY\nENTRY_BEGIN\nMATCH qname qtype\nSECTION QUESTION\n"
        "ns.example. IN AAAA\nENTRY_END\n",
        "RANGE_BEGIN 0 10\nENTRY_BEGIN\nADJUST raw_id\nRAW\n0000 8180\n00010000 00000000\n"
        "ENTRY_END\nRANGE_END\n",
        "RANGE_BEGIN 0 10\nENTRY_BEGIN\nMANDATORY\nTSIG hmac.key. c2VjcmV0\nSECTION QUESTION\n"
        "x. IN A\nENTRY_END\nRANGE_END\n",
        "STEP 1 QUERY\nENTRY_BEGIN\nSECTION QUESTION\nx. IN A\nSECTION ANSWER\n$TTL 60\n"
        '$ORIGIN example.\nmx MX 10 ( mail\n )\ntxt TXT "a; b" "c#d"\nENTRY_END\n',
    ]
    headers = [
        RPL_HEADER,
        'do-ip6: no\nharden-glue: "no"\nval-override-date: "20070916134226"\n'
        'trust-anchor: "example.com. 3600 IN DS 2854 3 1 '
        '46e4ffc6e9a4793b488954bd3f0cc6af0dfb201b"\nCONFIG_END\n',
        'forward-zone:\n\tname: "."\n\tforward-addr: 192.0.2.1\nCONFIG_END\n',
        "",
    ]
    seeds = []
    for i, body in enumerate(bodies):
        header = headers[i % len(headers)]
        seeds.append(f"{header}SCENARIO_BEGIN seed {i}\n{body}SCENARIO_END\n".encode())
    seeds.append(
        (RPL_HEADER + "SCENARIO_BEGIN all\n" + "".join(bodies) + "SCENARIO_END\n").encode()
    )
    # a crash the fuzzer found (see tests/replay/test_rpl.py): a DS dnspython refuses,
    # with no "DS" word to find its data by
    seeds.append(
        (
            RPL_HEADER + "SCENARIO_BEGIN ds\nSTEP 1 QUERY\nENTRY_BEGIN\nSECTION ANSWER\n"
            'tx IN DS"2854 3 1 46e4"\nENTRY_END\nSCENARIO_END\n'
        ).encode()
    )
    return seeds


SEEDS = {
    "frontend": frontend_seeds,
    "auth": auth_seeds,
    "scrubber": scrubber_seeds,
    "zone": zone_seeds,
    "rpl": rpl_seeds,
}


def main() -> None:
    for target, make in SEEDS.items():
        folder = CORPUS / target
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        seeds = make()
        for data in seeds:
            (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)
        print(f"{target}: {len(set(seeds))} seeds")


if __name__ == "__main__":
    main()

"""The fast message parser returns what dnspython returns, or raises where it raises."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import dns.edns
import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.DNAME
import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.OPT
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.SOA
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rrset
import dns.tsigkeyring
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poisonproof.auth.engine import AuthEngine
from poisonproof.auth.zones import load_zones
from poisonproof.net.base import Via
from poisonproof.resolver.outgoing import query_wire
from poisonproof.wire import fast_parse
from tests.resolver.inprocess import ManualClock

ROOT = Path(__file__).resolve().parents[2]
ZONES = ROOT / "src" / "poisonproof" / "data" / "zones"
CORPUS = ROOT / "fuzz" / "corpus"
IN = dns.rdataclass.IN
T = dns.rdatatype

# -- comparing two parses --------------------------------------------------------------------


def state(value):
    """Everything a value holds, names by their exact labels (`Name ==` ignores case)."""
    if isinstance(value, dns.name.Name):
        return ("Name", value.labels)
    if isinstance(value, dns.rdata.Rdata):
        slots = sorted(value._get_all_slots())
        return (type(value), tuple((s, state(getattr(value, s))) for s in slots))
    if isinstance(value, dns.edns.Option):
        return (type(value), value.otype, value.to_wire())
    if isinstance(value, dns.rrset.RRset):
        return (
            "RRset",
            state(value.name),
            (type(value.rdclass), value.rdclass),
            (type(value.rdtype), value.rdtype),
            (type(value.covers), value.covers),
            value.ttl,
            value.deleting,
            tuple(state(rd) for rd in value),
        )
    if isinstance(value, (tuple, list)):
        return tuple(state(v) for v in value)
    return (type(value), value)


def where(message: dns.message.Message, rrset: dns.rrset.RRset) -> tuple[int, int]:
    """The section and position of `rrset` in `message` (by identity)."""
    for number, section in enumerate(message.sections):
        for position, candidate in enumerate(section):
            if candidate is rrset:
                return number, position
    raise AssertionError("an index entry not in any section")


def index_state(message: dns.message.Message) -> list:
    return [(state(key), where(message, rrset)) for key, rrset in message.index.items()]


def rendered(message: dns.message.Message, how) -> tuple:
    try:
        return ("ok", how(message))
    except Exception as error:
        return (type(error), str(error))


def assert_same_message(ours: dns.message.Message, theirs: dns.message.Message) -> None:
    assert type(ours) is type(theirs)
    assert ours == theirs
    assert set(vars(ours)) == set(vars(theirs))
    for attribute, value in vars(theirs).items():
        if attribute not in ("sections", "index", "opt"):
            assert state(getattr(ours, attribute)) == state(value), attribute
    assert [state(s) for s in ours.sections] == [state(s) for s in theirs.sections]
    assert ours.index == theirs.index
    assert index_state(ours) == index_state(theirs)
    assert state(ours.opt) == state(theirs.opt)
    for attribute in ("edns", "ednsflags", "payload", "had_tsig"):
        assert getattr(ours, attribute) == getattr(theirs, attribute), attribute
    assert state(ours.options) == state(theirs.options)
    assert [o.to_text() for o in ours.options] == [o.to_text() for o in theirs.options]
    assert ours.rcode() == theirs.rcode() and ours.opcode() == theirs.opcode()
    assert rendered(ours, lambda m: m.to_wire(want_shuffle=False)) == rendered(
        theirs, lambda m: m.to_wire(want_shuffle=False)
    )
    assert rendered(ours, lambda m: m.to_text()) == rendered(theirs, lambda m: m.to_text())


def parse(parser, wire: bytes):
    try:
        return parser(wire)
    except Exception as error:
        return error


def assert_same(wire: bytes) -> None:
    """Both parsers raise the same exception, or return the same message."""
    theirs = parse(dns.message.from_wire, wire)
    ours = parse(fast_parse.from_wire, wire)
    if isinstance(theirs, Exception):
        assert type(ours) is type(theirs) and str(ours) == str(theirs)
    else:
        assert not isinstance(ours, Exception), ours
        assert_same_message(ours, theirs)


# -- building messages with dnspython --------------------------------------------------------

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 2**32 - 1)
LABELS = [
    b"www",
    b"bank",
    b"example",
    b"ns1",
    b"a",
    b"x" * 63,
    b"y" * 61,
    b"a\x00b",
    b"dot.ted",
    b"\\",
    b"\xff",
]


@st.composite
def names(draw) -> dns.name.Name:
    labels = draw(st.lists(st.sampled_from(LABELS), max_size=4))
    spelled = []
    for label in labels:
        flips = draw(st.integers(0, (1 << len(label)) - 1))
        spelled.append(
            bytes(
                c ^ 0x20 if 0x61 <= c <= 0x7A and flips >> i & 1 else c for i, c in enumerate(label)
            )
        )
    while sum(len(label) + 1 for label in spelled) > 254:  # at most 255 octets with the root
        spelled.pop(0)
    return dns.name.Name([*spelled, b""])


ttls = st.one_of(st.sampled_from([0, 1, 300, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]), u32)
GROUPS = [b"\x00\x00", b"\x00\x01", b"\xff\xff", b"\x20\x01", b"\x0a\xbc"]
ipv6 = st.lists(st.sampled_from(GROUPS), min_size=8, max_size=8).map(b"".join)


def rdatas() -> st.SearchStrategy[dns.rdata.Rdata]:
    a = st.binary(min_size=4, max_size=4).map(lambda b: dns.rdtypes.IN.A.A(IN, T.A, b))
    aaaa = ipv6.map(lambda b: dns.rdtypes.IN.AAAA.AAAA(IN, T.AAAA, b))
    ns = names().map(lambda n: dns.rdtypes.ANY.NS.NS(IN, T.NS, n))
    cname = names().map(lambda n: dns.rdtypes.ANY.CNAME.CNAME(IN, T.CNAME, n))
    ptr = names().map(lambda n: dns.rdtypes.ANY.PTR.PTR(IN, T.PTR, n))
    dname = names().map(lambda n: dns.rdtypes.ANY.DNAME.DNAME(IN, T.DNAME, n))
    mx = st.builds(lambda p, n: dns.rdtypes.ANY.MX.MX(IN, T.MX, p, n), u16, names())
    soa = st.builds(
        lambda m, r, ints: dns.rdtypes.ANY.SOA.SOA(IN, T.SOA, m, r, *ints),
        names(),
        names(),
        st.tuples(u32, u32, u32, u32, u32),
    )
    txt = st.lists(st.binary(max_size=300).map(lambda b: b[:255]), min_size=1, max_size=3).map(
        lambda s: dns.rdtypes.ANY.TXT.TXT(IN, T.TXT, s)
    )
    chaos_txt = st.binary(max_size=20).map(
        lambda b: dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.CH, T.TXT, [b])
    )
    rrsig = st.builds(
        lambda covered, signer, key: dns.rdata.from_text(
            IN, T.RRSIG, f"{covered} 13 2 300 20300101000000 20200101000000 {key} {signer} AAEC"
        ),
        st.sampled_from(["A", "NS", "SOA", "TXT"]),
        names().map(str),
        u16,
    )
    ds = u16.map(lambda key: dns.rdata.from_text(IN, T.DS, f"{key} 13 2 " + "ab" * 32))
    unknown = st.binary(max_size=8).map(lambda b: dns.rdata.GenericRdata(IN, 65280, b))
    return st.one_of(a, aaaa, ns, cname, ptr, dname, mx, soa, txt, chaos_txt, rrsig, ds, unknown)


def option_list() -> st.SearchStrategy[list[dns.edns.Option]]:
    cookie = st.builds(
        dns.edns.CookieOption,
        st.binary(min_size=8, max_size=8),
        st.one_of(st.just(b""), st.binary(min_size=8, max_size=32)),
    )
    nsid = st.binary(max_size=6).map(lambda b: dns.edns.GenericOption(dns.edns.OptionType.NSID, b))
    ede = st.builds(dns.edns.EDEOption, st.integers(0, 30), st.one_of(st.none(), st.just("why")))
    return st.lists(st.one_of(cookie, nsid, ede), max_size=2)


def render_rr(out: io.BytesIO, compress, name, rdclass: int, rdtype: int, ttl: int, rdata) -> None:
    name.to_wire(out, compress)
    out.write(struct.pack("!HHI", rdtype, rdclass, ttl))
    length_at = out.tell()
    out.write(b"\x00\x00")
    rdata.to_wire(out, compress)
    end = out.tell()
    out.seek(length_at)
    out.write(struct.pack("!H", end - length_at - 2))
    out.seek(end)


@st.composite
def messages(draw) -> bytes:
    """A message as a server or client might send it, rendered record by record (so the
    same owner and type may come several times, with differing TTLs and duplicates)."""
    compress = {} if draw(st.booleans()) else None
    flags = draw(u16)
    if draw(st.integers(0, 9)):  # mostly opcode QUERY
        flags &= 0x87FF
    question = st.tuples(names(), u16, st.sampled_from([1, 1, 1, 3, 255]))
    most = 2 if draw(st.integers(0, 9)) == 0 else 1
    questions = draw(st.lists(question, min_size=1, max_size=most))
    pool = draw(st.lists(names(), min_size=1, max_size=4))
    records = st.tuples(st.sampled_from(pool), ttls, rdatas())
    sections = [draw(st.lists(records, max_size=5)) for _ in range(3)]
    duplicates = draw(st.lists(st.integers(0, 14), max_size=3))
    flat = [rr for section in sections for rr in section]
    for pick in duplicates:  # the same record again, possibly with another TTL
        if flat:
            name, _, rdata = flat[pick % len(flat)]
            sections[pick % 3].append((name, draw(ttls), rdata))
    opt = None
    if draw(st.booleans()):
        ext = draw(st.sampled_from([0, 0, 1, 0xFF]))
        eflags = draw(st.sampled_from([0, 0x8000, 0xFFFF]))
        version = draw(st.sampled_from([0, 0, 1]))
        payload = draw(st.sampled_from([512, 1232, 4096, 0, 1]))
        options = dns.rdtypes.ANY.OPT.OPT(payload, T.OPT, draw(option_list()))
        opt = (ext << 24 | version << 16 | eflags, options)
    out = io.BytesIO()
    counts = [len(questions), *map(len, sections)]
    if opt is not None:
        counts[3] += 1
    out.write(struct.pack("!HHHHHH", draw(u16), flags, *counts))
    for name, rdtype, rdclass in questions:
        name.to_wire(out, compress)
        out.write(struct.pack("!HH", rdtype, rdclass))
    for number, section in enumerate(sections):
        records_out = [(name, rd.rdclass, rd.rdtype, ttl, rd) for name, ttl, rd in section]
        if number == 2 and opt is not None:
            position = draw(st.sampled_from([len(records_out), len(records_out), 0]))
            records_out.insert(position, (dns.name.root, opt[1].rdclass, T.OPT, opt[0], opt[1]))
        for record in records_out:
            render_rr(out, compress, *record)
    return out.getvalue()


# -- the properties --------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_same_message_as_dnspython(wire):
    assert_same(wire)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages(), st.data())
def test_same_outcome_on_mutated_messages(wire, data):
    edited = bytearray(wire)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(edited) - 1))
        edited[at] = data.draw(st.sampled_from([0, 1, 0x3F, 0x40, 0xC0, 0xFF, edited[at] ^ 0xFF]))
    cut = data.draw(st.integers(0, len(edited)))
    assert_same(bytes(edited[: cut if data.draw(st.booleans()) else len(edited)]))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), u16, st.integers(0, 4), st.integers(0, 4))
def test_same_outcome_on_random_bytes(body, flags, ancount, arcount):
    assert_same(body)
    header = struct.pack("!HHHHHH", 1, flags & 0x87FF, 1, ancount, 0, arcount)
    assert_same(header + body)


def corpus_inputs() -> list[bytes]:
    wires = set()
    for path in sorted(CORPUS.glob("*/*")):
        data = path.read_bytes()
        wires.update(data[skip:] for skip in range(3))  # targets prefix 0 to 2 selector bytes
    return sorted(wires)


def test_same_outcome_on_the_fuzz_corpus():
    inputs = corpus_inputs()
    assert len(inputs) > 100
    for wire in inputs:
        assert_same(wire)


def deckard_messages() -> list[bytes]:
    from poisonproof.replay.match import entry_message
    from poisonproof.replay.rpl import parse_file
    from tests.replay.corpus import require_corpus

    wires = set()
    for path in sorted(require_corpus().glob("*.rpl")):
        scenario = parse_file(path)
        entries = [e for r in scenario.ranges for e in r.entries]
        entries += [s.entry for s in scenario.steps if s.entry is not None]
        for entry in entries:
            if entry.raw is not None:
                wires.add(entry.raw)
                continue
            try:
                wires.add(entry_message(entry, 4660).to_wire(max_size=65535))
            except Exception:
                continue
    return sorted(wires)


def test_same_message_on_deckard_replies():
    wires = deckard_messages()
    for wire in wires:
        assert_same(wire)


# -- the fast path is taken ------------------------------------------------------------------


def typical_messages() -> dict[str, bytes]:
    clock = ManualClock()
    example = AuthEngine(load_zones([str(ZONES / "example.zone")]), clock)
    bank = AuthEngine(load_zones([str(ZONES / "bank.example.zone")]), clock)
    wires = {}
    for label, qname, qtype in [
        ("referral", "wWw.bAnk.example.", T.A),
        ("answer", "www.bank.example.", T.A),
        ("aaaa", "www.bank.example.", T.AAAA),
        ("cname", "portal.bank.example.", T.A),
        ("nxdomain", "nowhere.bank.example.", T.A),
        ("nodata", "www.bank.example.", T.MX),
        ("txt", "big.bank.example.", T.TXT),
    ]:
        query = query_wire(0x1234, dns.name.from_text(qname), qtype, edns_flags=0, cookie=b"8" * 8)
        wires[f"query {label}"] = query
        engine = example if label == "referral" else bank
        wires[label] = engine.handle(query, ("192.0.2.1", 4000), Via.UDP)
    wires["client query"] = dns.message.make_query("www.bank.example.", "A", use_edns=0).to_wire()
    wires["plain query"] = query_wire(7, dns.name.from_text("bank.example."), T.NS)
    return wires


def test_typical_messages_take_the_fast_path(monkeypatch):
    wires = typical_messages()
    expected = {label: dns.message.from_wire(wire) for label, wire in wires.items()}
    assert len(expected["referral"].authority[0]) == 2 and expected["referral"].additional

    def no_fallback(*args, **kwargs):
        raise AssertionError("fell back to dns.message.from_wire")

    monkeypatch.setattr(dns.message, "from_wire", no_fallback)
    for label, wire in wires.items():
        ours = fast_parse.from_wire(wire)
        assert_same_message(ours, expected[label])


def header(qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0, flags: int = 0x0100) -> bytes:
    return struct.pack("!HHHHHH", 1, flags, qd, an, ns, ar)


ROOT_A = b"\x00\x00\x01\x00\x01"
LONG = b"".join(bytes([len(label)]) + label for label in [b"x" * 63] * 3 + [b"y" * 59])
"""A 253-octet name (without its root label), at offset 12 as the question."""
A_RDATA = b"\x00\x01\x00\x01\x00\x00\x00\x05\x00\x04\x01\x02\x03\x04"
"""Type A, class IN, TTL 5, four octets of address."""


def records(*rrs: tuple) -> bytes:
    """(owner, class, type, TTL, rdata) records rendered without compression."""
    out = io.BytesIO()
    for owner, rdclass, rdtype, ttl, rdata in rrs:
        render_rr(out, None, dns.name.from_text(owner), rdclass, rdtype, ttl, rdata)
    return out.getvalue()


OPT_RR = ".", 1232, T.OPT, 0, dns.rdtypes.ANY.OPT.OPT(1232, T.OPT, [])
SIG_RR = (
    "a.",
    IN,
    T.SIG,
    5,
    dns.rdata.from_text(IN, T.SIG, "A 13 2 300 20300101000000 20200101000000 1 a. AAEC"),
)


def opt_with_cookie(data: bytes) -> tuple:
    option = dns.edns.GenericOption(dns.edns.OptionType.COOKIE, data)
    return ".", 1232, T.OPT, 0, dns.rdtypes.ANY.OPT.OPT(1232, T.OPT, [option])


def tsig_signed() -> bytes:
    message = dns.message.make_query("a.", "A")
    message.use_tsig(dns.tsigkeyring.from_text({"key.": "c2VjcmV0"}), keyname="key.")
    return message.to_wire()


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param(header()[:11], id="short header"),
        pytest.param(header() + ROOT_A + b"\x00", id="trailing junk"),
        pytest.param(header() + b"\xc0\x0c\x00\x01\x00\x01", id="pointer to itself"),
        pytest.param(header(flags=0x2800) + ROOT_A, id="update opcode"),
        pytest.param(header(flags=0x2000) + ROOT_A, id="notify opcode"),
        pytest.param(header(qd=0), id="no question"),
        pytest.param(header(qd=2) + ROOT_A * 2, id="two questions"),
        pytest.param(header(an=1) + ROOT_A + b"\xc0\x10" + A_RDATA, id="target runs into the name"),
        pytest.param(header(an=1) + ROOT_A + b"\xc0\x0c" + A_RDATA, id="pointer to the question"),
        pytest.param(header(an=1) + LONG + ROOT_A + b"\x01a\xc0\x0c" + A_RDATA, id="255 octets"),
        pytest.param(header(an=1) + LONG + ROOT_A + b"\x02ab\xc0\x0c" + A_RDATA, id="256 octets"),
        pytest.param(header(an=1) + ROOT_A + b"\x01a\xc0\x11" + A_RDATA, id="pointer to own start"),
        pytest.param(header(an=1) + ROOT_A + b"\x40a\x00" + A_RDATA, id="label type 01"),
        pytest.param(header(ar=1) + ROOT_A + records(OPT_RR), id="opt"),
        pytest.param(header(ar=2) + ROOT_A + records(OPT_RR, OPT_RR), id="two opt"),
        pytest.param(header(ns=1) + ROOT_A + records(OPT_RR), id="opt in authority"),
        pytest.param(header(ar=1) + ROOT_A + records(("a.", *OPT_RR[1:])), id="opt not at root"),
        pytest.param(header(ar=2) + ROOT_A + records(OPT_RR, SIG_RR), id="opt then sig"),
        pytest.param(tsig_signed(), id="tsig"),
        *(
            pytest.param(
                header(ar=1) + ROOT_A + records(opt_with_cookie(b"c" * size)), id=f"cookie {size}"
            )
            for size in (0, 7, 8, 15, 16, 40, 41)
        ),
    ],
)
def test_same_exception_or_message_for_edge_cases(wire):
    assert_same(wire)

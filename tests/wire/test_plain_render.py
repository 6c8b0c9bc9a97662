"""The plain renderer writes exactly what the frontend's dnspython rendering writes."""

from __future__ import annotations

import random

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonproof.net.base import Via
from poisonproof.resolver.frontend import Frontend
from poisonproof.resolver.iterator import Answer
from poisonproof.resolver.validator import Security
from poisonproof.wire import plain_render

_LABEL = st.sampled_from(["www", "WwW", "bank", "Bank", "example", "ns1", "a" * 60, "x-1"])
_NAMES = st.lists(_LABEL, min_size=1, max_size=4).map(lambda ls: ".".join(ls) + ".")
_RDATA = {
    "A": st.sampled_from(["192.0.2.1", "198.51.100.7", "10.0.0.1"]),
    "AAAA": st.sampled_from(["2001:db8::1", "::1"]),
    "NS": _NAMES,
    "CNAME": _NAMES,
    "MX": _NAMES.map(lambda n: f"10 {n}"),
    "TXT": st.sampled_from(['"hello"', '"a" "b"', '"' + "z" * 200 + '"']),
    "SOA": st.tuples(_NAMES, _NAMES).map(lambda p: f"{p[0]} {p[1]} 1 7200 900 1209600 300"),
}


@st.composite
def rrsets(draw: st.DrawFn, owner: str | None = None) -> dns.rrset.RRset:
    rdtype = draw(st.sampled_from(sorted(_RDATA)))
    name = owner or draw(_NAMES)
    texts = draw(st.lists(_RDATA[rdtype], min_size=1, max_size=4))
    return dns.rrset.from_text(name, draw(st.integers(0, 86400)), "IN", rdtype, *texts)


class _Resolver:
    anchors = None


def frontend() -> Frontend:
    front = Frontend.__new__(Frontend)  # only rendering is exercised: no resolver needed
    front.udp_payload = 1232
    front.stats, front.rcodes, front.answers = {}, {}, None
    front.resolver = _Resolver()  # type: ignore[assignment]
    return front


@settings(max_examples=300, deadline=None)
@given(
    qname=_NAMES,
    owner_is_qname=st.booleans(),
    answer=st.lists(rrsets(), max_size=4),
    authority=st.lists(rrsets(), max_size=3),
    rcode=st.sampled_from([dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.SERVFAIL]),
    edns=st.sampled_from([None, 512, 1232, 4096, "do", "cookie", "padding"]),
    rd=st.booleans(),
    cd=st.booleans(),
    tcp=st.booleans(),
)
def test_plain_rendering_is_dnspythons(
    qname: str,
    owner_is_qname: bool,
    answer: list[dns.rrset.RRset],
    authority: list[dns.rrset.RRset],
    rcode: int,
    edns: object,
    rd: bool,
    cd: bool,
    tcp: bool,
) -> None:
    if owner_is_qname and answer:
        answer[0] = dns.rrset.from_rdata_list(qname.lower(), answer[0].ttl, list(answer[0]))
    query = dns.message.make_query(qname, "A", use_edns=edns is not None)
    if isinstance(edns, int):
        query.use_edns(0, 0, edns)
    elif edns == "do":
        query.use_edns(0, dns.flags.DO, 1232)
    elif edns == "cookie":
        query.use_edns(0, 0, 1232, options=[dns.edns.CookieOption(b"12345678", b"")])
    elif edns == "padding":
        query.use_edns(0, 0, 1232, options=[dns.edns.GenericOption(dns.edns.PADDING, b"")])
    query.flags = (dns.flags.RD if rd else 0) | (dns.flags.CD if cd else 0)
    query.id = random.Random(qname).randrange(65536)
    reply = Answer(rcode, answer, authority, security=Security.UNCHECKED)
    front, via = frontend(), Via.TCP if tcp else Via.UDP
    plain = front._render_plain(query, reply, via)
    with pytest.MonkeyPatch.context() as patch:  # the full renderer alone
        patch.setattr(plain_render, "render_plain", lambda *a, **k: None)
        full = front._render(query, reply, via)
    if plain is not None:
        assert plain == full
    elif edns not in ("do", "padding"):
        # only a reply over its limit leaves the plain path: dnspython truncates it
        assert dns.message.from_wire(full).flags & dns.flags.TC


def test_dnssec_and_extended_errors_take_the_full_renderer() -> None:
    query = dns.message.make_query("www.bank.example.", "A")
    front = frontend()
    for reply in (
        Answer(dns.rcode.NOERROR, security=Security.SECURE),
        Answer(dns.rcode.SERVFAIL, ede=(22, "no reachable authority")),
    ):
        assert front._render_plain(query, reply, Via.UDP) is None


def test_a_common_answer_takes_the_plain_path() -> None:
    query = dns.message.make_query("WwW.Bank.Example.", "A", use_edns=0)
    answer = dns.rrset.from_text("www.bank.example.", 300, "IN", "A", "192.0.2.1")
    reply = Answer(dns.rcode.NOERROR, [answer], security=Security.UNCHECKED)
    wire = frontend()._render_plain(query, reply, Via.UDP)
    assert wire is not None
    parsed = dns.message.from_wire(wire)
    assert parsed.id == query.id and parsed.answer[0].name.to_text() == "WwW.Bank.Example."
    assert parsed.flags & dns.flags.RA and parsed.payload == 1232

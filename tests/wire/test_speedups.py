"""The dnspython speed-up writes exactly what dnspython writes, and is in place."""

from __future__ import annotations

import io

import dns.message
import dns.name
import dns.rdata
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import poisonproof.resolver  # noqa: F401  (installs the speed-up)
from poisonproof.wire import speedups

NAMES = [
    "WwW.ExAmPlE.",
    ".",
    "a.",
    "x" * 63 + ".B.c.",
    "\\000.\\255ab.MiX.",
    "relative",
    "Rel.Ative",
]
ORIGINS = [None, dns.name.from_text("OrIgIn."), dns.name.from_text("o.")]


def test_installed_on_the_pinned_dnspython() -> None:
    assert speedups.install()
    assert dns.name.Name.to_wire is speedups._to_wire
    assert speedups.install()  # twice: still one wrapper, not a wrapper of a wrapper


def outcome(method, name, *args) -> tuple[str, bytes | None, bytes]:
    file = io.BytesIO() if args[0] == "file" else None
    try:
        returned = method(name, file, *args[1:])
    except Exception as error:  # the same exception as well
        return type(error).__name__, None, b""
    return "ok", returned, file.getvalue() if file is not None else b""


@pytest.mark.parametrize("text", NAMES)
@pytest.mark.parametrize("origin", ORIGINS)
@pytest.mark.parametrize("canonicalize", [False, True])
@pytest.mark.parametrize("target", ["file", "bytes"])
def test_same_bytes_and_errors_as_dnspython(
    text: str, origin: dns.name.Name | None, canonicalize: bool, target: str
) -> None:
    name = dns.name.from_text(text, origin=None)
    original = speedups.originals()["to_wire"]
    for table in (False, True):  # no compression table, then a fresh one for each
        ours = outcome(
            dns.name.Name.to_wire, name, target, {} if table else None, origin, canonicalize
        )
        theirs = outcome(original, name, target, {} if table else None, origin, canonicalize)
        assert ours == theirs


def test_compressed_messages_and_rdata_hashes_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    query = dns.message.make_query("WwW.BaNk.ExAmPlE.", "A")
    reply = dns.message.make_response(query)
    reply.authority.append(
        dns.rrset.from_text(
            "bank.example.", 300, "IN", "NS", "Ns1.bank.example.", "ns2.BANK.example."
        )
    )
    reply.authority.append(
        dns.rrset.from_text("bank.example.", 300, "IN", "SOA", "Ns1.Bank.example. h.x. 1 2 3 4 5")
    )
    # dnspython shuffles each RRset's records per rendering unless told not to
    ours = reply.to_wire(want_shuffle=False)
    parsed = dns.message.from_wire(ours)
    digests = [r.to_digestable() for rrset in parsed.authority for r in rrset]
    hashes = [hash(r) for rrset in parsed.authority for r in rrset]
    monkeypatch.setattr(dns.name.Name, "to_wire", speedups.originals()["to_wire"])
    assert reply.to_wire(want_shuffle=False) == ours
    assert [r.to_digestable() for rrset in parsed.authority for r in rrset] == digests
    assert [hash(r) for rrset in parsed.authority for r in rrset] == hashes
    assert dns.message.from_wire(ours) == parsed


def test_name_methods_installed() -> None:
    assert speedups.install()
    for attribute, original in speedups.originals().items():
        assert getattr(dns.name.Name, attribute) is not original


_LABEL = st.binary(min_size=1, max_size=8).map(
    lambda raw: bytes(b"aAzZ.-\x00\xff"[c % 8] for c in raw)  # few distinct bytes: collisions
)
_NAMES = st.builds(
    lambda labels, absolute: dns.name.Name([*labels, b""] if absolute else labels),
    st.lists(_LABEL, max_size=4),
    st.booleans(),
)


@settings(max_examples=400, deadline=None)
@given(_NAMES, _NAMES)
def test_hash_and_equality_as_dnspython(first: dns.name.Name, second: dns.name.Name) -> None:
    old = speedups.originals()
    for name in (first, second):  # the value __hash__ returns, before hash() reduces it
        assert name.__hash__() == old["__hash__"](name)
    assert (first == second) is old["__eq__"](first, second)
    assert (first != second) is old["__ne__"](first, second)
    swapped = dns.name.Name([label.swapcase() for label in first.labels])
    assert first == swapped and (first != swapped) is False and hash(first) == hash(swapped)
    assert (first == first.to_text()) is old["__eq__"](first, first.to_text())


@settings(max_examples=400, deadline=None)
@given(_NAMES, _NAMES)
def test_is_subdomain_as_dnspython(first: dns.name.Name, second: dns.name.Name) -> None:
    original = speedups.originals()["is_subdomain"]
    for one, other in ((first, second), (second, first), (first, first)):
        assert one.is_subdomain(other) is original(one, other)
        longer = dns.name.Name([b"Www", *other.labels]) if other.labels else other
        assert longer.is_subdomain(other) is original(longer, other)
        swapped = dns.name.Name([label.swapcase() for label in other.labels])
        assert longer.is_subdomain(swapped) is original(longer, swapped)


def test_hash_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speedups, "HASH_MEMO_SIZE", 10)
    names = [dns.name.from_text(f"n{i}.example.") for i in range(25)]
    assert [n.__hash__() for n in names] == [speedups.originals()["__hash__"](n) for n in names]
    assert len(speedups._hashes) <= 10


@settings(max_examples=300, deadline=None)
@given(st.lists(_NAMES, min_size=1, max_size=6), st.booleans(), st.integers(0, 20_000))
def test_compressed_rendering_as_dnspython(
    names: list[dns.name.Name], canonicalize: bool, start: int
) -> None:
    """A sequence of names written into one file with one compression table: the same
    bytes, the same table (offsets past 0x3FFF are not kept) and the same errors."""
    origin = dns.name.from_text("OrIgIn.")

    def render(to_wire: object) -> tuple[bytes, dict[dns.name.Name, int], list[str]]:
        file, table, errors = io.BytesIO(), {}, []
        file.write(b"\0" * start)
        for name in names:
            try:
                to_wire(name, file, table, origin if len(name) % 2 else None, canonicalize)  # type: ignore[operator]
            except Exception as error:
                errors.append(type(error).__name__)
        return file.getvalue(), table, errors

    ours = render(dns.name.Name.to_wire)
    theirs = render(speedups.originals()["to_wire"])
    assert ours == theirs
    assert [list(k.labels) for k in ours[1]] == [list(k.labels) for k in theirs[1]]


@settings(max_examples=300, deadline=None)
@given(_NAMES)
def test_parent_and_canonicalize_as_dnspython(name: dns.name.Name) -> None:
    old = speedups.originals()
    assert name.canonicalize().labels == old["canonicalize"](name).labels
    try:
        expected: object = old["parent"](name).labels
    except dns.name.NoParent:
        expected = dns.name.NoParent
    try:
        got: object = name.parent().labels
    except dns.name.NoParent:
        got = dns.name.NoParent
    assert got == expected
    for special in (dns.name.root, dns.name.empty):
        with pytest.raises(dns.name.NoParent):
            special.parent()


_RDATA_TEXTS = st.one_of(
    st.tuples(st.just("A"), st.sampled_from(["10.0.0.1", "10.0.0.2", "192.0.2.255"])),
    st.tuples(st.just("AAAA"), st.sampled_from(["2001:db8::1", "2001:DB8:0::1", "::1"])),
    st.tuples(
        st.sampled_from(["NS", "CNAME", "PTR"]), st.sampled_from(["Ns1.Ex.", "ns1.ex.", "a."])
    ),
    st.tuples(
        st.just("SOA"),
        st.sampled_from(
            [
                "Ns1.Ex. host.ex. 1 3600 900 1209600 60",
                "ns1.ex. HOST.ex. 1 3600 900 1209600 60",
                "ns1.ex. host.ex. 2 3600 900 1209600 60",
                "ns1.ex. host.ex. 1 3600 900 1209600 61",
            ]
        ),
    ),
    st.tuples(st.just("MX"), st.sampled_from(["10 Mail.Ex.", "10 mail.ex.", "20 mail.ex."])),
    st.tuples(
        st.just("SRV"),
        st.sampled_from(["10 5 5060 Sip.Ex.", "10 5 5060 sip.ex.", "10 5 5061 sip.ex."]),
    ),
    st.tuples(st.just("TXT"), st.sampled_from(['"v=spf1"', '"V=SPF1"', '"a" "b"', '"ab"'])),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_RDATA_TEXTS, min_size=1, max_size=8))
def test_rdata_field_hashes_agree_with_equality(texts: list[tuple[str, str]]) -> None:
    import dns.rdataclass
    import dns.rdatatype

    rdatas = [dns.rdata.from_text(dns.rdataclass.IN, t, v) for t, v in texts]
    assert all(type(r).__hash__ is speedups.rdata_classes()[type(r)] for r in rdatas)
    for first in rdatas:
        for second in rdatas:
            if first == second:
                assert hash(first) == hash(second)
    distinct: list[dns.rdata.Rdata] = []
    for rdata in rdatas:
        if rdata not in distinct:  # equality alone: what a set must come to
            distinct.append(rdata)
    assert list(dict.fromkeys(rdatas)) == distinct


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF))
def test_message_rcode_as_dnspython(flags: int, ednsflags: int) -> None:
    message = dns.message.Message()
    message.flags, message.ednsflags = flags, ednsflags
    assert message.rcode() is speedups.original_rcode()(message) or (
        message.rcode() == speedups.original_rcode()(message)
        and type(message.rcode()) is type(speedups.original_rcode()(message))
    )

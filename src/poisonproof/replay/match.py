"""What a parsed `.rpl` entry means on the wire: MATCH, ADJUST and REPLY semantics.

Owns: choosing the entry that answers a query (Deckard's MATCH rules), building the scripted
reply bytes (REPLY flags and rcode, SECTION records, ADJUST copy_id/copy_query/raw_id/
do_not_answer, RAW data, EDNS, TSIG), building the query bytes of a QUERY step, and
comparing an answer with a CHECK_ANSWER entry into a one-line "expected X, got Y".
Must never: read files or parse `.rpl` text (that is `poisonproof.replay.rpl`), touch a
socket or a clock, or keep state between calls (MANDATORY and one-shot REPLY bookkeeping
belong to the replayer).

The rules follow Deckard's `pydnstest/matchpart.py` and `pydnstest/scenario.py`; the code
is ours. Where Deckard and its documentation disagree we follow Deckard's code (noted).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsigkeyring

from poisonproof.replay.rpl import Entry, Record

TEMPLATE_EDNS_VERSION = 0
TEMPLATE_EDNS_PAYLOAD = 4096
"""Every Deckard entry message carries EDNS version 0 with a 4096-byte payload."""

_HEADER_FLAG_MASK = dns.flags.from_text("QR AA TC RD RA AD CD")
"""The header flags MATCH flags compares (DO lives in EDNS and is never compared)."""

_ORDER = (
    "opcode",
    "qtype",
    "qname",
    "qcase",
    "subdomain",
    "flags",
    "rcode",
    "answertypes",
    "answerrrsigs",
    "answer",
    "authority",
    "additional",
    "edns",
    "tcp",
    "udp",
)
"""The order mismatches are looked for in (`ttl` only modifies the section checks)."""

_Key = tuple[dns.name.Name, int, int, dns.rdata.Rdata, int | None]


# --------------------------------------------------------------------------- messages


def entry_message(entry: Entry, msg_id: int = 0) -> dns.message.Message:
    """The entry as Deckard's template message: REPLY flags, opcode and rcode, EDNS 0 with
    payload 4096 (DO when REPLY says DO), the sections one record per RRset in file order.
    RAW data and TSIG are not part of it."""
    message = dns.message.Message(id=msg_id)
    message.flags = entry.flags
    message.set_opcode(entry.opcode)
    ednsflags = dns.flags.DO if entry.dnssec_ok else 0
    message.use_edns(TEMPLATE_EDNS_VERSION, ednsflags, TEMPLATE_EDNS_PAYLOAD)
    message.set_rcode(entry.rcode)
    message.question = [record.to_rrset() for record in entry.question]
    message.answer = [record.to_rrset() for record in entry.answer]
    message.authority = [record.to_rrset() for record in entry.authority]
    message.additional = [record.to_rrset() for record in entry.additional]
    return message


def build_query(entry: Entry, msg_id: int) -> bytes:
    """The bytes a QUERY step sends: its RAW data verbatim, else the entry message with
    `msg_id` (REPLY words are the query's flags, as in Deckard), TSIG-signed if asked."""
    if entry.raw is not None:
        return entry.raw
    message = entry_message(entry, msg_id)
    _sign(entry, message, None)
    return message.to_wire(max_size=65535)


def build_reply(entry: Entry, query: dns.message.Message) -> bytes | None:
    """The reply a RANGE (or REPLY step) entry sends to `query`, or None for
    `ADJUST do_not_answer`.

    RAW data is sent verbatim, with the query's ID in its first two bytes under
    `ADJUST raw_id`. Otherwise the template message is adjusted: `copy_id` copies the ID
    and the first question name (with its case; Deckard copies the name even when a
    `subdomain` match made them differ), `copy_query` copies the whole question section.
    With either adjustment the EDNS record mirrors the query's (present or not, its
    version and flags, DO included) as Deckard does; without one the template's EDNS is
    kept. An extended rcode forces EDNS on, since it cannot be sent without. Without
    `copy_id` the ID is 0 (Deckard picks a random one; both are wrong for the resolver).
    """
    if "do_not_answer" in entry.adjust:
        return None
    if entry.raw is not None:
        wire = entry.raw
        if "raw_id" in entry.adjust and len(wire) >= 2:
            wire = query.id.to_bytes(2, "big") + wire[2:]
        return wire
    copy_id = "copy_id" in entry.adjust
    copy_query = "copy_query" in entry.adjust
    message = entry_message(entry, query.id if copy_id else 0)
    if copy_id and message.question and query.question:
        template = message.question[0]
        message.question[0] = dns.rrset.RRset(
            query.question[0].name, template.rdclass, template.rdtype
        )
    if copy_query:
        message.question = [dns.rrset.RRset(q.name, q.rdclass, q.rdtype) for q in query.question]
    if copy_id or copy_query:
        if query.edns >= 0:
            message.use_edns(query.edns, query.ednsflags, TEMPLATE_EDNS_PAYLOAD)
        else:
            message.use_edns(False)
    if entry.rcode > 0xF and message.edns < 0:
        message.use_edns(TEMPLATE_EDNS_VERSION, 0, TEMPLATE_EDNS_PAYLOAD)
    message.set_rcode(entry.rcode)
    _sign(entry, message, query)
    return message.to_wire(max_size=65535)


def _sign(entry: Entry, message: dns.message.Message, query: dns.message.Message | None) -> None:
    if entry.tsig is None:
        return
    keyring = dns.tsigkeyring.from_text({entry.tsig.keyname: entry.tsig.secret})
    message.use_tsig(keyring, keyname=entry.tsig.keyname)
    if query is not None and query.had_tsig:
        message.request_mac = query.mac


# --------------------------------------------------------------------------- matching


def entry_matches(
    entry: Entry, query: dns.message.Message, query_wire: bytes, *, tcp: bool = False
) -> bool:
    """Whether a RANGE/REPLY `entry` answers `query` (received as `query_wire`, over TCP
    when `tcp`): every MATCH element holds, the entry's message being the expected side.

    An entry with RAW data, no QUESTION section and no MATCH line describes a raw query:
    it matches exactly its bytes. An entry without a MATCH line otherwise matches every
    query (testbound's catch-all)."""
    if entry.raw is not None and not entry.question and not entry.has_match_line:
        return query_wire == entry.raw
    return first_mismatch(entry, query, tcp=tcp) is None


def select_entry(
    entries: Iterable[Entry], query: dns.message.Message, query_wire: bytes, *, tcp: bool = False
) -> Entry | None:
    """The first of `entries` that matches, as Deckard scans a range; None if none does."""
    for entry in entries:
        if entry_matches(entry, query, query_wire, tcp=tcp):
            return entry
    return None


def compare_answer(
    expected: Entry,
    reply: dns.message.Message,
    *,
    reply_wire: bytes | None = None,
    tcp: bool | None = None,
) -> str | None:
    """None when `reply` satisfies the CHECK_ANSWER entry's MATCH elements, else the first
    mismatch as one line: `element: expected X, got Y`.

    Sections compare as Deckard does: record by record, in any order, owner names
    case-insensitively, TTLs only under `MATCH ttl` (pass `reply_wire` then, so each
    record keeps its own TTL). Flags are the header flags listed in REPLY; DO is not
    compared. An entry with RAW data compares `reply_wire` (or the re-rendered reply) byte
    for byte. `tcp` (the transport of the reply) is checked by `MATCH TCP`/`UDP` only when
    given."""
    if expected.raw is not None:
        wire = reply.to_wire() if reply_wire is None else reply_wire
        if wire != expected.raw:
            return f"raw: expected {expected.raw.hex()}, got {wire.hex()}"
        return None
    if "ttl" in expected.match_fields and reply_wire is not None:
        reply = dns.message.from_wire(reply_wire, one_rr_per_rrset=True)
    return first_mismatch(expected, reply, tcp=tcp)


def first_mismatch(
    expected: Entry, got: dns.message.Message, *, tcp: bool | None = None
) -> str | None:
    """The first MATCH element of `expected` that `got` fails, as
    `element: expected X, got Y`; None when all hold."""
    fields = expected.match_fields
    with_ttl = "ttl" in fields
    for name in _ORDER:
        if name not in fields:
            continue
        if name in ("tcp", "udp"):
            if tcp is None or tcp == (name == "tcp"):
                continue
            return f"{name}: expected {name.upper()}, got {'TCP' if tcp else 'UDP'}"
        problem = _CHECKS[name](expected, got, with_ttl)
        if problem is not None:
            return f"{name}: {problem}"
    return None


def _expected_got(expected: object, got: object) -> str | None:
    return None if expected == got else f"expected {expected}, got {got}"


def _check_opcode(entry: Entry, got: dns.message.Message, _ttl: bool) -> str | None:
    return _expected_got(dns.opcode.to_text(entry.opcode), dns.opcode.to_text(got.opcode()))


def _question_pair(
    entry: Entry, got: dns.message.Message, show: Callable[[dns.rrset.RRset], object]
) -> str | None:
    """Deckard's question rule: both empty match; one empty does not; else compare the
    first question of each through `show`."""
    if not entry.question and not got.question:
        return None
    if not entry.question:
        return f"expected <empty question>, got {show(got.question[0])}"
    mine = entry.question[0].to_rrset()
    if not got.question:
        return f"expected {show(mine)}, got <empty question>"
    return _expected_got(show(mine), show(got.question[0]))


def _check_qtype(entry: Entry, got: dns.message.Message, _ttl: bool) -> str | None:
    return _question_pair(entry, got, lambda q: dns.rdatatype.to_text(q.rdtype))


def _check_qname(entry: Entry, got: dns.message.Message, _ttl: bool) -> str | None:
    return _question_pair(entry, got, lambda q: _Folded(q.name))


def _check_qcase(entry: Entry, got: dns.message.Message, _ttl: bool) -> str | None:
    return _question_pair(entry, got, lambda q: q.name.to_text())


def _check_subdomain(entry: Entry, got: dns.message.Message, _ttl: bool) -> str | None:
    if not entry.question:
        return None
    qname = got.question[0].name if got.question else dns.name.root
    parent = entry.question[0].name
    if qname.is_subdomain(parent):
        return None
    return f"expected a name at or below {parent}, got {qname}"


def _check_flags(entry: Entry, got: dns.message.Message, _ttl: bool) -> str | None:
    mine = dns.flags.to_text(entry.flags & _HEADER_FLAG_MASK) or "<none>"
    theirs = dns.flags.to_text(got.flags & _HEADER_FLAG_MASK) or "<none>"
    return _expected_got(mine, theirs)


def _check_rcode(entry: Entry, got: dns.message.Message, _ttl: bool) -> str | None:
    return _expected_got(dns.rcode.to_text(entry.rcode), dns.rcode.to_text(got.rcode()))


def _check_edns(entry: Entry, got: dns.message.Message, _ttl: bool) -> str | None:
    mine = f"version {TEMPLATE_EDNS_VERSION} payload {TEMPLATE_EDNS_PAYLOAD}"
    theirs = "no EDNS" if got.edns < 0 else f"version {got.edns} payload {got.payload}"
    return _expected_got(mine, theirs)


def _section_check(name: str) -> Callable[[Entry, dns.message.Message, bool], str | None]:
    def check(entry: Entry, got: dns.message.Message, with_ttl: bool) -> str | None:
        mine = _record_keys(entry.section(name), with_ttl)
        theirs = _rrset_keys(getattr(got, name), with_ttl)
        # Deckard: each expected record is present, each received one is expected, and
        # the counts agree.
        if set(mine) == set(theirs) and len(mine) == len(theirs):
            return None
        return f"expected [{_render(mine)}], got [{_render(theirs)}]"

    return check


def _types_check(with_rrsigs: bool) -> Callable[[Entry, dns.message.Message, bool], str | None]:
    def check(entry: Entry, got: dns.message.Message, _ttl: bool) -> str | None:
        mine = {_type_label(r.rdtype, r.rdata) for r in entry.answer}
        theirs = {_type_label(rrset.rdtype, rdata) for rrset in got.answer for rdata in rrset}
        if not with_rrsigs:
            mine = {t for t in mine if not t.startswith("RRSIG")}
            theirs = {t for t in theirs if not t.startswith("RRSIG")}
        return _expected_got(" ".join(sorted(mine)), " ".join(sorted(theirs)))

    return check


def _type_label(rdtype: int, rdata: dns.rdata.Rdata | None) -> str:
    if rdtype == dns.rdatatype.RRSIG and rdata is not None:
        return f"RRSIG({dns.rdatatype.to_text(rdata.covers())})"
    return dns.rdatatype.to_text(rdtype)


_CHECKS: dict[str, Callable[[Entry, dns.message.Message, bool], str | None]] = {
    "opcode": _check_opcode,
    "qtype": _check_qtype,
    "qname": _check_qname,
    "qcase": _check_qcase,
    "subdomain": _check_subdomain,
    "flags": _check_flags,
    "rcode": _check_rcode,
    "answertypes": _types_check(with_rrsigs=False),
    "answerrrsigs": _types_check(with_rrsigs=True),
    "answer": _section_check("answer"),
    "authority": _section_check("authority"),
    "additional": _section_check("additional"),
    "edns": _check_edns,
}


class _Folded:
    """A name compared case-insensitively but shown as written."""

    def __init__(self, name: dns.name.Name) -> None:
        self.name = name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Folded) and self.name == other.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __str__(self) -> str:
        return self.name.to_text()


def _record_keys(records: Sequence[Record], with_ttl: bool) -> list[_Key]:
    return [
        (r.name, r.rdclass, r.rdtype, r.rdata, r.ttl if with_ttl else None)
        for r in records
        if r.rdata is not None
    ]


def _rrset_keys(rrsets: Sequence[dns.rrset.RRset], with_ttl: bool) -> list[_Key]:
    return [
        (rrset.name, rrset.rdclass, rrset.rdtype, rdata, rrset.ttl if with_ttl else None)
        for rrset in rrsets
        for rdata in rrset
    ]


def _render(keys: Sequence[_Key]) -> str:
    parts = []
    for name, rdclass, rdtype, rdata, ttl in keys:
        ttl_text = "" if ttl is None else f" {ttl}"
        klass = dns.rdataclass.to_text(rdclass)
        parts.append(f"{name}{ttl_text} {klass} {dns.rdatatype.to_text(rdtype)} {rdata}")
    return "; ".join(parts)

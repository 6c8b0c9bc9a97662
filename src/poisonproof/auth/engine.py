"""The authoritative engine: one query message in, one reply message (or silence) out.

Owns: parsing and checking the query (FORMERR, NOTIMP, REFUSED, BADVERS), EDNS0
(RFC 6891: payload, version, DO), picking the served zone (DS from the parent side),
rendering with TC when a UDP reply does not fit, RRL on UDP, and counters.
Must never: do I/O or read the system clock; it is driven by a network through
`handle(wire, peer, via)` and reads time from the injected clock.
"""

from __future__ import annotations

import logging
from collections import Counter

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from poisonproof.auth.lookup import Kind, ZoneLookup
from poisonproof.auth.reply_cache import ReplyCache
from poisonproof.auth.rrl import ResponseRateLimiter, Verdict
from poisonproof.auth.zones import ZoneSet
from poisonproof.net.base import Address, Clock, Via
from poisonproof.wire.guard import QUERY_LABELS, within_budget
from poisonproof.wire.message import question_end as query_key_end

log = logging.getLogger("poisonproof.auth")

HEADER_SIZE = 12
DEFAULT_UDP_PAYLOAD = 1232
"""What we advertise and the most we send over UDP (DNS flag day 2020)."""
CLASSIC_UDP_LIMIT = 512
_REFUSED_TYPES = {dns.rdatatype.AXFR, dns.rdatatype.IXFR}
_FORMERR_TYPES = {dns.rdatatype.OPT, dns.rdatatype.TSIG, dns.rdatatype.TKEY}
_NOTIMP_TYPES = {dns.rdatatype.MAILA, dns.rdatatype.MAILB}


def _header_only_reply(wire: bytes, rcode: dns.rcode.Rcode) -> bytes:
    """A reply built from the 12-byte header alone, for queries we cannot parse."""
    flags = (wire[2] & 0x79) | 0x80  # keep opcode and RD, set QR
    return wire[:2] + bytes([flags, int(rcode) & 0x0F]) + b"\x00" * 8


class AuthEngine:
    """Serves a `ZoneSet` (records in zone order: no random shuffling, so a simulation
    with a given seed replays exactly). Replace `zones` to reload; in-flight calls
    finish on the old set."""

    def __init__(
        self,
        zones: ZoneSet,
        clock: Clock,
        *,
        rrl: ResponseRateLimiter | None = None,
        max_udp_payload: int = DEFAULT_UDP_PAYLOAD,
    ) -> None:
        self.replies = ReplyCache()
        self._zones = zones
        self.clock = clock
        self.rrl = rrl
        self.max_udp_payload = max_udp_payload
        self.stats: Counter[str] = Counter()

    @property
    def zones(self) -> ZoneSet:
        return self._zones

    @zones.setter
    def zones(self, zones: ZoneSet) -> None:
        """Serve `zones` from now on (a reload); replies of the old zones are forgotten."""
        self._zones = zones
        self.replies.clear()

    # -- entry point used by every network --------------------------------------------

    def handle(self, wire: bytes, peer: Address, via: Via) -> bytes | None:
        """Answer one DNS message; never raises for any input."""
        self.stats["queries"] += 1
        replay = self.replies.lookup(wire)
        if replay is not None:
            self.stats["replayed"] += 1
            reply, rrl_class = replay
            return self._rate_limited(reply, rrl_class, peer, via)
        if len(wire) < HEADER_SIZE:
            self.stats["dropped_short"] += 1
            return None
        if wire[2] & 0x80:
            self.stats["dropped_response"] += 1  # never answer a response: no reply loops
            return None
        try:
            if not within_budget(wire, QUERY_LABELS):  # a compression bomb: not parsed
                self.stats["too_costly"] += 1
                raise ValueError("names too costly to decompress")
            query = dns.message.from_wire(wire)
        except Exception as error:  # any parse failure is the sender's problem, not ours
            self.stats["formerr"] += 1
            log.debug("FORMERR to %s: %s", peer, error)
            return _header_only_reply(wire, dns.rcode.FORMERR)
        try:
            return self._reply(query, peer, via, wire)
        except Exception:
            self.stats["servfail_internal"] += 1
            log.exception("internal error answering %s from %s", query.question, peer)
            return _header_only_reply(wire, dns.rcode.SERVFAIL)

    # -- message level ----------------------------------------------------------------

    def _reply(
        self, query: dns.message.Message, peer: Address, via: Via, raw: bytes | None = None
    ) -> bytes | None:
        response = dns.message.make_response(query, our_payload=self.max_udp_payload)
        if query.edns > 0:
            self.stats["badvers"] += 1
            response.use_edns(0, 0, self.max_udp_payload)
            response.set_rcode(dns.rcode.BADVERS)
            response.question = list(query.question)
            return self._render(response, query, via)
        dnssec_ok = query.edns == 0 and bool(query.ednsflags & dns.flags.DO)
        if query.edns == 0:
            response.use_edns(
                0, dns.flags.DO if dnssec_ok else 0, self.max_udp_payload, query.payload
            )
        rcode = self._precheck(query)
        if rcode is not None:
            self.stats[dns.rcode.to_text(rcode).lower()] += 1
            response.set_rcode(rcode)
            return self._render(response, query, via)
        question = query.question[0]
        qname, qtype = question.name, dns.rdatatype.RdataType.make(question.rdtype)
        served = self.zones.find(qname)
        if (
            served is not None
            and qtype == dns.rdatatype.DS
            and qname == served.origin
            and (parent := self.zones.find_parent_side(qname)) is not None
        ):
            served = parent
        if served is None:
            self.stats["refused"] += 1
            response.set_rcode(dns.rcode.REFUSED)
            return self._render(response, query, via)
        sections = ZoneLookup(served, dnssec_ok).answer(qname, qtype)
        response.set_rcode(sections.rcode)
        if sections.authoritative:
            response.flags |= dns.flags.AA
        response.answer = sections.answer
        response.authority = sections.authority
        response.additional = sections.additional
        self.stats[sections.kind] += 1
        rrl_class: tuple[object, ...] = (sections.kind, sections.kind_name)
        if sections.kind in (Kind.ANSWER, Kind.NODATA):
            rrl_class = (*rrl_class, int(qtype))
        reply = self._render(response, query, via)
        if raw is not None:
            self.replies.store(raw, reply, rrl_class)
        return self._rate_limited(reply, rrl_class, peer, via)

    def _rate_limited(
        self, reply: bytes, rrl_class: tuple[object, ...], peer: Address, via: Via
    ) -> bytes | None:
        """RRL on UDP: the reply, nothing (dropped), or a truncated slip."""
        if via is not Via.UDP or self.rrl is None:
            return reply
        verdict = self.rrl.decide(peer[0], rrl_class, self.clock.monotonic())
        if verdict is Verdict.DROP:
            self.stats["rrl_dropped"] += 1
            return None
        if verdict is Verdict.SLIP:
            self.stats["rrl_slipped"] += 1
            return _slip(reply)
        return reply

    def _precheck(self, query: dns.message.Message) -> dns.rcode.Rcode | None:
        """The rcode for a query we will not look up, or None when it is a fine question."""
        if query.opcode() != dns.opcode.QUERY:
            return dns.rcode.NOTIMP
        if len(query.question) != 1:
            return dns.rcode.FORMERR
        question = query.question[0]
        if question.rdtype in _FORMERR_TYPES:
            return dns.rcode.FORMERR
        if question.rdtype in _NOTIMP_TYPES:
            return dns.rcode.NOTIMP
        if question.rdclass != dns.rdataclass.IN or question.rdtype in _REFUSED_TYPES:
            return dns.rcode.REFUSED
        return None

    def _limit(self, query: dns.message.Message, via: Via) -> int:
        if via is Via.TCP:
            return 65535
        if query.edns < 0:
            return CLASSIC_UDP_LIMIT
        return max(CLASSIC_UDP_LIMIT, min(query.payload, self.max_udp_payload))

    def _render(self, response: dns.message.Message, query: dns.message.Message, via: Via) -> bytes:
        try:
            return response.to_wire(max_size=self._limit(query, via), want_shuffle=False)
        except dns.exception.TooBig:
            self.stats["truncated"] += 1
            return self._truncated(response)

    @staticmethod
    def _truncated(response: dns.message.Message) -> bytes:
        """The reply with TC set and no records: the client must ask again over TCP."""
        response.answer = []
        response.authority = []
        response.additional = []
        response.flags |= dns.flags.TC
        return response.to_wire(want_shuffle=False)


def _slip(reply: bytes) -> bytes:
    """A rendered reply cut to header and question, with TC set (an RRL slip)."""
    question_end = query_key_end(reply)
    header = bytearray(reply[:12])
    header[2] |= 0x02  # TC
    header[6:12] = b"\x00" * 6  # no answer, authority or additional records
    return bytes(header) + reply[12:question_end]

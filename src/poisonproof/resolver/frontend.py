"""The client side of the resolver: which queries to take, and the reply to each.

Owns: parsing client queries (FORMERR/NOTIMP/REFUSED as the authoritative engine does),
access control (default: loopback clients only; others get REFUSED, so the resolver is
never open by default), RD/RA semantics (RD=0 is answered from the cache only),
and rendering an `Answer` (minimal responses, TTLs as cached, TC over UDP when too big,
Extended DNS Errors on SERVFAIL).
Must never: do I/O or resolve (it returns what must be resolved; the server drives it).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from poisonproof.net.base import Address, Via
from poisonproof.resolver.answer_cache import AnswerCache
from poisonproof.resolver.iterator import Answer, Ede, Resolver
from poisonproof.resolver.sentinel import sentinel_fails
from poisonproof.resolver.validator import Security
from poisonproof.wire import fast_parse, plain_render
from poisonproof.wire.guard import QUERY_LABELS, within_budget

DEFAULT_ALLOW = ("127.0.0.0/8", "::1/128")
UDP_PAYLOAD = 1232
_META = {dns.rdatatype.OPT, dns.rdatatype.TSIG, dns.rdatatype.TKEY}
_TRANSFER = {dns.rdatatype.AXFR, dns.rdatatype.IXFR}
_PLAIN_SECURITY = (Security.UNCHECKED, Security.INSECURE)
"""Answers rendered without DNSSEC flags or records (no AD, no sentinel, no bogus)."""
_OPCODE_BITS = 0x7800
_PADDING = dns.edns.OptionType.PADDING
_ANSWER_FLAGS = int(dns.flags.QR | dns.flags.RA)
_COPIED_FLAGS = int(dns.flags.RD | dns.flags.CD)
"""Query flags a reply copies (RFC 1035 §4.1.1 for RD; RFC 4035 §3.2.2 for CD)."""
_RD = int(dns.flags.RD)
_DO = int(dns.flags.DO)


@dataclass(frozen=True)
class Question:
    """A client query that needs the resolver."""

    query: dns.message.Message
    qname: dns.name.Name
    qtype: int
    wire: bytes

    @property
    def key(self) -> tuple[object, ...]:
        """Identical client questions in flight share one resolution (names compare and
        hash ignoring case)."""
        return (self.qname, self.qtype)


class Frontend:
    def __init__(
        self,
        resolver: Resolver,
        allow: tuple[str, ...] = DEFAULT_ALLOW,
        *,
        fast_path: bool = True,
        udp_payload: int = UDP_PAYLOAD,
    ) -> None:
        self.resolver = resolver
        self.udp_payload = udp_payload
        """The largest UDP reply we send (RFC 9715 / DNS flag day 2020: 1232)."""
        self.allow = [ipaddress.ip_network(cidr, strict=False) for cidr in allow]
        self.stats: dict[str, int] = {}
        self.rcodes: dict[int, int] = {}
        """Replies built by `render`, by rcode (cache-hit replays are not counted here)."""
        self.answers = AnswerCache(resolver.clock) if fast_path else None
        self._allowed_memo: dict[str, bool] = {}

    def _count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1

    def allowed(self, peer: Address) -> bool:
        verdict = self._allowed_memo.get(peer[0])
        if verdict is None:
            try:
                ip = ipaddress.ip_address(peer[0])
                verdict = any(ip in net for net in self.allow)
            except ValueError:
                verdict = False
            if len(self._allowed_memo) > 65_536:
                self._allowed_memo.clear()
            self._allowed_memo[peer[0]] = verdict
        return verdict

    def answer_now(self, queries: list[bytes], peers: list[tuple[Any, ...]]) -> list[bytes | None]:
        """Cache-hit replies to a batch of UDP queries, None for the rest (no dnspython).

        Only for clients already known to be allowed (the first query of a new client
        takes `receive`, which decides); every None goes to `receive` as usual.
        """
        if self.answers is None:
            return [None] * len(queries)
        replies = self.answers.replay_batch(
            queries, self.resolver.clock.wall(), peers, self._allowed_memo.get
        )
        hits = len(replies) - replies.count(None)
        if hits:
            stats = self.stats
            stats["queries"] = stats.get("queries", 0) + hits
            stats["cache_hits"] = stats.get("cache_hits", 0) + hits
        return replies

    def receive(self, wire: bytes, peer: Address, via: Via) -> bytes | Question | None:
        """A reply now (bytes), silence (None), or a `Question` for the resolver."""
        self._count("queries")
        if self.answers is not None and self.allowed(peer):
            replay = self.answers.lookup(wire)
            if replay is not None:
                self._count("cache_hits")
                return replay
        if len(wire) < 12 or wire[2] & 0x80:
            self._count("dropped")
            return None
        try:
            if not within_budget(wire, QUERY_LABELS):  # a compression bomb: not parsed
                self._count("too_costly")
                raise ValueError("names too costly to decompress")
            query = fast_parse.from_wire(wire)
        except Exception:
            self._count("formerr")
            return wire[:2] + bytes([(wire[2] & 0x79) | 0x80, 0x01]) + b"\x00" * 8
        if not self.allowed(peer):
            self._count("refused_acl")
            return self._error(
                query, dns.rcode.REFUSED, via, (Ede.PROHIBITED, "client not allowed")
            )
        if query.edns > 0:
            reply = dns.message.make_response(query, recursion_available=True)
            reply.use_edns(0, 0, self.udp_payload)
            reply.set_rcode(dns.rcode.BADVERS)
            return reply.to_wire(want_shuffle=False)
        if int(query.flags) & _OPCODE_BITS:  # not opcode QUERY (0); ints, not enum flags
            return self._error(query, dns.rcode.NOTIMP, via)
        if len(query.question) != 1:
            return self._error(query, dns.rcode.FORMERR, via)
        question = query.question[0]
        if question.rdtype in _META:
            return self._error(query, dns.rcode.FORMERR, via)
        if question.rdclass != dns.rdataclass.IN or question.rdtype in _TRANSFER:
            return self._error(query, dns.rcode.REFUSED, via)
        qname = question.name
        qtype = int(question.rdtype)
        cached = self.resolver.cached_answer(qname, qtype)
        if cached is not None:
            self._count("cache_hits")
            return self.render(query, cached, via, wire)
        if not int(query.flags) & _RD:
            self._count("refused_norec")
            return self._error(
                query, dns.rcode.REFUSED, via, (Ede.OTHER, "not cached and recursion not desired")
            )
        self._count("cache_misses")
        return Question(query, qname, qtype, wire)

    def _error(
        self,
        query: dns.message.Message,
        rcode: int,
        via: Via,
        ede: tuple[int, str] | None = None,
    ) -> bytes:
        return self.render(query, Answer(rcode, ede=ede), via)

    def render(
        self,
        query: dns.message.Message,
        answer: Answer,
        via: Via,
        raw_query: bytes | None = None,
    ) -> bytes:
        """The reply to `query`; with `raw_query`, also kept for the fast path."""
        wire = self._render(query, answer, via)
        rcode = wire[3] & 0x0F
        self.rcodes[rcode] = self.rcodes.get(rcode, 0) + 1
        if raw_query is not None:
            self.remember(raw_query, answer, wire)
        return wire

    def remember(
        self, raw_query: bytes, answer: Answer, wire: bytes, generation: int | None = None
    ) -> None:
        """Keep `wire`, the reply rendered for `raw_query`, for the fast path (when it may
        be replayed). A server can do this once the reply is on its way: nothing in the
        reply depends on it. With `generation` (the `AnswerCache.generation` it was
        rendered under), not if the stored replies were cleared since (a reload)."""
        if (
            self.answers is not None
            and (generation is None or generation == self.answers.generation)
            and answer.ede is None
            and answer.security is not Security.BOGUS
            and raw_query[13:31].lower() != b"root-key-sentinel-"
            and answer.rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
            and (answer.answer or answer.authority)
        ):
            ttl = min(r.ttl for r in [*answer.answer, *answer.authority])
            self.answers.store(raw_query, wire, ttl)

    def _limit(self, query: dns.message.Message, via: Via) -> int:
        """The longest reply `query` may get over `via`."""
        if via is not Via.UDP:
            return 65535
        return 512 if query.edns < 0 else max(512, min(query.payload, self.udp_payload))

    def _render_plain(self, query: dns.message.Message, answer: Answer, via: Via) -> bytes | None:
        """The reply, for the common case, without a dnspython `Message`: what `_render`
        would build, byte for byte (a test holds them equal). None when it is not that
        case (DNSSEC, an EDE, EDNS padding, another opcode) or does not fit its limit."""
        if (
            answer.security not in _PLAIN_SECURITY
            or answer.ede is not None
            or answer.rcode > 15
            or len(query.question) != 1
            or int(query.flags) & _OPCODE_BITS
        ):
            return None
        payload = None
        if query.edns >= 0:
            if int(query.ednsflags) & _DO or any(o.otype == _PADDING for o in query.options):
                return None
            payload = self.udp_payload
        question = query.question[0]
        flags = _ANSWER_FLAGS | (int(query.flags) & _COPIED_FLAGS) | answer.rcode
        return plain_render.render_plain(
            query.id,
            flags,
            (question.name, question.rdtype, question.rdclass),
            [_echo_case(rrset, question.name) for rrset in answer.answer],
            list(answer.authority),
            self._limit(query, via),
            payload,
        )

    def _render(self, query: dns.message.Message, answer: Answer, via: Via) -> bytes:
        plain = self._render_plain(query, answer, via)
        if plain is not None:
            return plain
        reply = dns.message.make_response(
            query, recursion_available=True, our_payload=self.udp_payload
        )
        checking_disabled = bool(query.flags & dns.flags.CD)
        reply.flags |= query.flags & dns.flags.CD  # RFC 4035 §3.2.2: CD is copied
        dnssec_ok = query.edns >= 0 and bool(query.ednsflags & dns.flags.DO)
        if dnssec_ok:
            reply.want_dnssec(True)
        ede = answer.ede
        if (
            answer.security is Security.SECURE
            and not checking_disabled
            and query.question
            and sentinel_fails(
                query.question[0].name, query.question[0].rdtype, self.resolver.anchors
            )
        ):
            self._count("sentinel_servfail")
            answer, ede = Answer(dns.rcode.SERVFAIL), None
        if answer.security is Security.BOGUS and not checking_disabled:
            self._count("bogus")
            ede = answer.bogus or (Ede.DNSSEC_BOGUS, "DNSSEC validation failed")
            answer = Answer(dns.rcode.SERVFAIL)
        reply.set_rcode(answer.rcode)
        if (
            answer.security is Security.SECURE
            and (dnssec_ok or query.flags & dns.flags.AD)
            and not checking_disabled
        ):
            # RFC 6840 §5.7: DO or AD asks for the AD bit; with CD the client validates
            # itself and gets no AD (as Knot Resolver and the Deckard scenarios do)
            reply.flags |= dns.flags.AD
        qname = query.question[0].name if query.question else None
        rrsets = []
        for rrset in answer.answer:
            sigs = answer.sigs.get((rrset.name, int(rrset.rdtype))) if dnssec_ok else None
            rrsets.append(rrset if qname is None else _echo_case(rrset, qname))
            if sigs is not None:
                rrsets.append(sigs)
        reply.answer = rrsets
        reply.authority = list(answer.authority)
        if dnssec_ok:
            reply.authority += answer.denial
        if ede is not None and query.edns >= 0:
            code, text = ede
            reply.use_edns(
                0,
                dns.flags.DO if dnssec_ok else 0,
                self.udp_payload,
                options=[dns.edns.EDEOption(code, text)],
            )
        try:
            return reply.to_wire(max_size=self._limit(query, via), want_shuffle=False)
        except dns.exception.TooBig:
            reply.answer, reply.authority, reply.additional = [], [], []
            reply.flags |= dns.flags.TC
            return reply.to_wire(want_shuffle=False)


def _echo_case(rrset: dns.rrset.RRset, qname: dns.name.Name) -> dns.rrset.RRset:
    """`rrset`, owned by the client's spelling of `qname` when it is that name's."""
    if rrset.name != qname:
        return rrset
    echoed = rrset.copy()
    echoed.name = qname  # the client's case in the owner, as in the question
    return echoed

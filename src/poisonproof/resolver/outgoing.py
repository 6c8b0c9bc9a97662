"""Upstream queries: what makes each one hard to forge, and what makes a reply acceptable.

Owns: the transaction ID (CSPRNG, weak PRNG or sequence, per `Defenses.txid`), the
source port (a fresh draw per query from the configured pool), 0x20 case randomization,
EDNS0 (1232-byte buffer), client DNS cookies (RFC 7873/9018), and the acceptance test
applied to every datagram that arrives for a query: right source address and port, right
ID, right question with the exact case sent, right cookie. Datagrams that fail it are
classified (unwanted / near miss) so the resolver can react.
Must never: send or receive (the driver does), or interpret the reply's records.
"""

from __future__ import annotations

import hashlib
import random
import struct
from dataclasses import dataclass, field

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype

from poisonproof.net.base import Address
from poisonproof.resolver.defenses import EPHEMERAL_PORTS, Defenses, TxidStrategy
from poisonproof.wire import fast_parse
from poisonproof.wire.guard import REPLY_LABELS, within_budget
from poisonproof.wire.message import COOKIE_OPTION
from poisonproof.wire.speedups import valid_name

EDNS_PAYLOAD = 1232
_LETTERS = bytes(0x20 if 0x61 <= (c | 0x20) <= 0x7A else 0 for c in range(256))
"""Byte translation: ASCII letters to 0x20 (the case bit), everything else to 0."""
_SPREAD = [sum(1 << (8 * i + 5) for i in range(8) if b >> i & 1) for b in range(256)]
"""Bit i of a byte moved to bit 5 of byte i of a little-endian 64-bit number."""


class Entropy:
    """The random sources of one resolver: `secure` for IDs/ports/case (a CSPRNG on the
    real network, seeded in simulation) and `weak` for what pre-2008 resolvers used."""

    def __init__(self, secure: random.Random, weak: random.Random | None = None) -> None:
        self.secure = secure
        self.weak = weak if weak is not None else random.Random(secure.getrandbits(64))


class QueryFactory:
    """Makes upstream queries according to `Defenses`."""

    def __init__(self, defenses: Defenses, entropy: Entropy) -> None:
        self.defenses = defenses
        self.entropy = entropy
        self._sequence = entropy.weak.getrandbits(16)
        low, high = EPHEMERAL_PORTS
        if defenses.port_pool == 0:
            self._pool: list[int] | None = None
        elif defenses.port_pool == 1 and defenses.fixed_port:
            self._pool = [defenses.fixed_port]
        else:
            self._pool = entropy.secure.sample(range(low, high + 1), defenses.port_pool)
        self._cookie_secret = entropy.secure.getrandbits(128).to_bytes(16, "big")
        self._cookies: dict[Address, bytes] = {}

    @property
    def ports(self) -> list[int] | None:
        """The pool ports are drawn from (None: the whole ephemeral range)."""
        return None if self._pool is None else list(self._pool)

    def txid(self) -> int:
        strategy = self.defenses.txid
        if strategy is TxidStrategy.CSPRNG:
            return self.entropy.secure.getrandbits(16)
        if strategy is TxidStrategy.RANDOM16:
            return self.entropy.weak.getrandbits(16)
        self._sequence = (self._sequence + 1) & 0xFFFF
        return self._sequence

    def source_port(self) -> int:
        if self._pool is None:
            low, high = EPHEMERAL_PORTS
            return self.entropy.secure.randint(low, high)
        return self._pool[self.entropy.secure.randrange(len(self._pool))]

    def randomize_case(self, name: dns.name.Name) -> dns.name.Name:
        """0x20: bit i of one random draw per label flips the case of the label's byte i
        when it is a letter (the draws are the same as ever, so seeded runs repeat)."""
        rng = self.entropy.secure
        labels = []
        for label in name.labels:
            size = len(label)
            bits = rng.getrandbits(max(1, size))
            if not size:
                labels.append(label)
                continue
            flips = 0  # bit i of `bits` moved to bit 5 (0x20) of byte i, little-endian
            for chunk in range(0, size, 8):
                flips |= _SPREAD[(bits >> chunk) & 0xFF] << (8 * chunk)
            letters = int.from_bytes(label.translate(_LETTERS), "little")
            flipped = int.from_bytes(label, "little") ^ (flips & letters)
            labels.append(flipped.to_bytes(size, "little"))
        return valid_name(tuple(labels))  # same lengths as the valid labels it came from

    def client_cookie(self, server: Address) -> bytes:
        """RFC 9018-style: a stable per-server client cookie from our secret (worked out
        once per server: the same few servers are asked again and again)."""
        cookie = self._cookies.get(server)
        if cookie is None:
            if len(self._cookies) >= 4096:
                self._cookies.clear()
            cookie = self._cookies[server] = hashlib.blake2b(
                f"{server[0]}#{server[1]}".encode(), key=self._cookie_secret, digest_size=8
            ).digest()
        return cookie

    def make(
        self,
        qname: dns.name.Name,
        qtype: int,
        server: Address,
        *,
        use_0x20: bool,
        use_edns: bool = True,
        server_cookie: bytes | None = None,
        dnssec_ok: bool = False,
        recursion_desired: bool = False,
    ) -> OutgoingQuery:
        sent_name = self.randomize_case(qname) if use_0x20 else qname
        txid = self.txid()
        cookie = self.client_cookie(server) if use_edns and self.defenses.cookies else None
        wire = query_wire(
            txid,
            sent_name,
            qtype,
            recursion_desired=recursion_desired,
            edns_flags=(dns.flags.DO if dnssec_ok else 0) if use_edns else None,
            cookie=None if cookie is None else cookie + (server_cookie or b""),
        )
        return OutgoingQuery(
            wire=wire,
            txid=txid,
            server=server,
            sent_name=sent_name,
            qtype=qtype,
            client_cookie=cookie,
            exact_case=use_0x20,
        )


_OPT_HEAD = struct.Struct("!BHHIH")  # root owner, type OPT, payload size, TTL, rdlength


def query_wire(
    txid: int,
    name: dns.name.Name,
    qtype: int,
    *,
    recursion_desired: bool = False,
    edns_flags: int | None = None,
    cookie: bytes | None = None,
) -> bytes:
    """The wire form of a one-question IN query, built directly: byte for byte what
    `dns.message.make_query` + `use_edns(0, edns_flags, EDNS_PAYLOAD, options)` +
    `to_wire()` give (a test holds them equal), without making the message objects.

    `edns_flags` None: no OPT record; `cookie`: the COOKIE option's data (client cookie,
    then the server cookie if any), only with EDNS.
    """
    header = struct.pack(
        "!HHHHHH",
        txid,
        dns.flags.RD if recursion_desired else 0,
        1,
        0,
        0,
        0 if edns_flags is None else 1,
    )
    question = name.to_wire() + struct.pack("!HH", qtype, dns.rdataclass.IN)
    if edns_flags is None:
        return header + question
    options = b"" if cookie is None else struct.pack("!HH", COOKIE_OPTION, len(cookie)) + cookie
    opt = _OPT_HEAD.pack(0, dns.rdatatype.OPT, EDNS_PAYLOAD, edns_flags & 0xFFFF, len(options))
    return header + question + opt + options


@dataclass
class MatchLog:
    """What arrived for one query besides the accepted reply."""

    wrong_source: int = 0
    wrong_id: int = 0
    wrong_question: int = 0
    wrong_case: int = 0
    bad_cookie: int = 0
    malformed: int = 0
    server_cookie: bytes | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def near_misses(self) -> int:
        """Replies from the right server that failed only on ID, case or cookie."""
        return self.wrong_id + self.wrong_case + self.bad_cookie

    @property
    def unwanted(self) -> int:
        return self.wrong_source + self.near_misses + self.wrong_question + self.malformed


@dataclass
class OutgoingQuery:
    wire: bytes
    txid: int
    server: Address
    sent_name: dns.name.Name
    qtype: int
    client_cookie: bytes | None
    exact_case: bool
    log: MatchLog = field(default_factory=MatchLog)
    require_cookie: bool = False
    """The server has sent us cookies before: a reply without our cookie is forged."""
    _parsed: tuple[bytes, dns.message.Message] | None = field(
        default=None, repr=False, compare=False
    )
    """The last datagram `check` parsed, and its parse (so the reply is parsed once)."""
    sent_wire: bytes = field(init=False, repr=False, compare=False)
    """`sent_name` on the wire, as sent (with its 0x20 case)."""

    def __post_init__(self) -> None:
        self.sent_wire = self.sent_name.to_wire()

    def check(self, data: bytes, sender: Address) -> str | None:
        """The acceptance test for one datagram: None accepts it, else why not (pure)."""
        if sender != self.server:
            return "wrong_source"
        if len(data) < 12 or not data[2] & 0x80:
            return "malformed"
        if int.from_bytes(data[:2], "big") != self.txid:
            return "wrong_id"
        if not within_budget(data, REPLY_LABELS):
            return "malformed"  # a compression bomb: never parsed
        asked = data[12 : 12 + len(self.sent_wire)]  # the echoed question name, as sent back
        try:
            reply = fast_parse.from_wire(self._lowercase_question(data, asked))
        except Exception:
            return "malformed"
        self._parsed = (data, reply)
        if len(reply.question) != 1:
            return "wrong_question"
        question = reply.question[0]
        if question.name != self.sent_name or question.rdtype != self.qtype:
            return "wrong_question"
        if self.exact_case and asked != self.sent_wire:
            return "wrong_case"
        if self.client_cookie is None:
            return None
        cookie = next((o for o in reply.options if o.otype == COOKIE_OPTION), None)
        if cookie is None:
            return "bad_cookie" if self.require_cookie else None
        if cookie.client != self.client_cookie:  # type: ignore[attr-defined]
            return "bad_cookie"
        return None

    def _lowercase_question(self, data: bytes, asked: bytes) -> bytes:
        """`data` with its question name lowercased when it is our 0x20 name (any case).

        The records of a reply mostly name their owners, and the names in their rdata, by
        compression pointers into the question: parsed from this copy they come out
        lowercase already, which is the form the scrubber would copy them into (the cache
        keeps canonical names). The case the server echoed is checked on `data` itself.
        """
        if not self.exact_case or asked == (lowered := asked.lower()):
            return data
        if lowered != self.sent_wire.lower():
            return data  # not our name: parsed as it came, and rejected below
        return data[:12] + lowered + data[12 + len(lowered) :]

    def parsed(self, data: bytes) -> dns.message.Message | None:
        """`data` parsed: the parse `check` made when it accepted this very datagram (which
        passed the compression-bomb test there), else a new parse; None when its names are
        too costly to decompress (never parsed)."""
        seen = self._parsed
        if seen is not None and seen[0] is data:
            return seen[1]
        if not within_budget(data, REPLY_LABELS):
            return None
        return fast_parse.from_wire(data)

    def reject(self, reason: str, count: int = 1) -> None:
        """Count datagrams that arrived for this query and were not its reply."""
        setattr(self.log, reason, getattr(self.log, reason) + count)

    def accepted(self, reply: dns.message.Message) -> None:
        """Learn from the accepted reply, already parsed by the caller (the server's cookie)."""
        cookie = next((o for o in reply.options if o.otype == COOKIE_OPTION), None)
        if cookie is not None and self.client_cookie is not None:
            self.log.server_cookie = cookie.server or None  # type: ignore[attr-defined]

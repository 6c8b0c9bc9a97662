"""Reading and patching DNS messages in place, without building dnspython objects.

Owns: the cache key of a query (lowercased name, type, class, EDNS presence, DO, CD, RD),
walking a rendered reply to find each record's TTL field, and patching a stored reply
for a new client (its ID, its exact question case, TTLs aged by elapsed time).
Must never: allocate dnspython objects or accept anything it cannot walk exactly; when
in doubt it returns None and the caller takes the slow path.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

_HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")
OPT = 41


def _skip_name(wire: bytes, offset: int) -> int | None:
    """Offset just past the (possibly compressed) name at `offset`, or None if malformed."""
    end = len(wire)
    while offset < end:
        length = wire[offset]
        if length == 0:
            return offset + 1
        if length & 0xC0 == 0xC0:
            return offset + 2 if offset + 2 <= end else None
        if length & 0xC0:
            return None
        offset += 1 + length
    return None


@dataclass(frozen=True)
class QueryKey:
    key: bytes
    question_end: int
    """Offset just past the question section (name, type, class)."""


COOKIE_OPTION = 10
"""The EDNS option code of a DNS COOKIE (RFC 7873), for every module that looks for one."""
_OPTION_HEAD = struct.Struct("!HH")


def query_key(wire: bytes, *, cookie_ignored: bool = False) -> QueryKey | None:
    """The cache key of a plain query with one question and at most an OPT record.

    None for anything unusual (not a QUERY, QR set, compression in the question, TSIG,
    more sections, EDNS options): such queries take the full path. With `cookie_ignored`
    (for a replier whose reply does not depend on a DNS COOKIE, RFC 7873 section 5.2: a
    server that does not do cookies ignores the option), an OPT holding nothing but one
    well-formed COOKIE option keys as the same query without it.
    """
    if len(wire) < 17:
        return None
    _id, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(wire)
    if flags & 0xF800 or qdcount != 1 or ancount or nscount or arcount > 1:
        return None  # QR set, opcode other than QUERY, or sections a query should not have
    offset = 12
    end = len(wire)
    while True:
        if offset >= end:
            return None
        length = wire[offset]
        if length == 0:
            break
        if length > 63:
            return None
        offset += 1 + length
    name_end = offset + 1
    question_end = name_end + 4
    if question_end > end:
        return None
    edns = b"\x00"
    if arcount:
        # exactly one OPT at the root: 0x00, type 41, class = payload, ttl = ext flags
        if end - question_end < 11 or wire[question_end] != 0:
            return None
        rtype, _payload, ttl, rdlength = _RR_FIXED.unpack_from(wire, question_end + 1)
        if rtype != OPT or question_end + 11 + rdlength != end or ttl & 0x00FF0000:
            return None
        if rdlength and not (cookie_ignored and _lone_cookie(wire, question_end + 11, end)):
            return None  # options (cookies, ...) are answered by the full path
        do_bit = (ttl >> 15) & 1
        edns = b"\x02" if do_bit else b"\x01"
    elif question_end != end:
        return None
    flag_bits = bytes([(flags >> 8) & 0x01, flags & 0x30])  # RD; AD, CD
    key = wire[12:name_end].lower() + wire[name_end:question_end] + edns + flag_bits
    return QueryKey(key, question_end)


def _lone_cookie(wire: bytes, start: int, end: int) -> bool:
    """Whether the OPT rdata from `start` to `end` is exactly one COOKIE option of a legal
    length (a client cookie of 8 bytes, or 8 + a server cookie of 8 to 32)."""
    if end - start < 4:
        return False
    code, length = _OPTION_HEAD.unpack_from(wire, start)
    return (
        code == COOKIE_OPTION and start + 4 + length == end and (length == 8 or 16 <= length <= 40)
    )


def question_end(wire: bytes) -> int:
    """Offset just past the first question (12 when there is none or it is malformed)."""
    if len(wire) < 12 or _HEADER.unpack_from(wire)[2] == 0:
        return 12
    after = _skip_name(wire, 12)
    if after is None or after + 4 > len(wire):
        return 12
    return after + 4


def ttl_offsets(wire: bytes) -> list[int] | None:
    """Offsets of the TTL field of every record except OPT, or None if not walkable."""
    if len(wire) < 12:
        return None
    _id, _flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(wire)
    offset = 12
    for _ in range(qdcount):
        after = _skip_name(wire, offset)
        if after is None:
            return None
        offset = after + 4
    offsets = []
    for _ in range(ancount + nscount + arcount):
        after = _skip_name(wire, offset)
        if after is None or after + 10 > len(wire):
            return None
        rtype, _class, _ttl, rdlength = _RR_FIXED.unpack_from(wire, after)
        if rtype != OPT:
            offsets.append(after + 4)
        offset = after + 10 + rdlength
    if offset != len(wire):
        return None
    return offsets


def patch_reply(
    stored: bytes,
    query: bytes,
    question_end: int,
    ttl_fields: list[int],
    elapsed: int,
) -> bytes:
    """`stored` answered to `query`: its ID, its question bytes (case), TTLs less `elapsed`."""
    out = bytearray(stored)
    out[0:2] = query[0:2]
    out[12:question_end] = query[12:question_end]
    if elapsed > 0:
        for offset in ttl_fields:
            ttl = int.from_bytes(out[offset : offset + 4], "big")
            out[offset : offset + 4] = max(0, ttl - elapsed).to_bytes(4, "big")
    return bytes(out)

"""How much work a DNS message's names would cost to decompress, counted before parsing.

Owns: walking a message's owner names and the names inside the RDATA of the types
dnspython decompresses, following compression pointers (at most 16 hops a name, as
dnspython), and counting the labels a full parse would build, stopping as soon as the
count passes a budget. A 64 KB "compression bomb" (thousands of records whose names all
point at one 127-label name: half a million labels) takes dnspython seconds to parse;
this walk stops after `budget` labels, so it costs microseconds to milliseconds.
Must never: allocate dnspython objects, raise for any input, or reject a message that
dnspython would parse at a cost within the budget (an unwalkable message passes: the
parser then refuses it quickly itself).
"""

from __future__ import annotations

import struct

QUERY_LABELS = 2_048
"""Label budget for a query: one question, OPT and TSIG need at most 3 x 127 labels."""
REPLY_LABELS = 20_000
"""Label budget for an upstream reply (~90 ms of dnspython at worst; real replies, even
64 KB ones, stay far below: 1,000 records of 10-label names are 10,000 labels)."""

_HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")
_MAX_HOPS = 16
_MAX_NAME_LABELS = 128
_NAMES_AT: dict[int, tuple[int, bool]] = {
    # rdtype: (offset of the first name in the RDATA, a second name follows it)
    2: (0, False),  # NS
    3: (0, False),  # MD
    4: (0, False),  # MF
    5: (0, False),  # CNAME
    6: (0, True),  # SOA: MNAME, RNAME
    7: (0, False),  # MB
    8: (0, False),  # MG
    9: (0, False),  # MR
    12: (0, False),  # PTR
    14: (0, True),  # MINFO
    15: (2, False),  # MX
    17: (0, True),  # RP
    18: (2, False),  # AFSDB
    21: (2, False),  # RT
    33: (6, False),  # SRV
    36: (2, False),  # KX
    39: (0, False),  # DNAME
    46: (18, False),  # RRSIG: the signer's name
    47: (0, False),  # NSEC: the next name
}
_FLAT: frozenset[int] = frozenset(
    # other types whose RDATA dnspython reads names from (at offsets that depend on the
    # data): charged as two full names each
    {23, 24, 26, 30, 35, 38, 45, 55, 58, 64, 65, 107, 249, 250, 260}
)
_FLAT_CHARGE = 2 * 127


def _name_labels(wire: bytes, offset: int) -> tuple[int, int]:
    """(labels of the name at `offset`, offset just past it in place); (-1, -1) if bad."""
    end = len(wire)
    labels = 0
    hops = 0
    after = -1
    while offset < end:
        length = wire[offset]
        if length == 0:
            return labels + 1, (after if after >= 0 else offset + 1)
        if length & 0xC0 == 0xC0:
            if offset + 1 >= end:
                return -1, -1
            if after < 0:
                after = offset + 2
            hops += 1
            if hops > _MAX_HOPS:
                return labels, after  # dnspython refuses the chain here
            offset = ((length & 0x3F) << 8) | wire[offset + 1]
            continue
        if length & 0xC0:
            return -1, -1
        labels += 1
        if labels > _MAX_NAME_LABELS:
            return labels, after if after >= 0 else offset  # too long: refused there
        offset += 1 + length
    return -1, -1


def within_budget(wire: bytes, budget: int) -> bool:
    """False when parsing `wire` would build more than `budget` name labels."""
    if len(wire) < 12:
        return True
    _id, _flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(wire)
    spent = 0
    offset = 12
    for _ in range(qdcount):
        labels, after = _name_labels(wire, offset)
        if labels < 0:
            return True
        spent += labels
        if spent > budget:
            return False
        offset = after + 4
    for _ in range(ancount + nscount + arcount):
        labels, after = _name_labels(wire, offset)
        if labels < 0 or after + 10 > len(wire):
            return True
        spent += labels
        rdtype, _class, _ttl, rdlength = _RR_FIXED.unpack_from(wire, after)
        rdata = after + 10
        if rdata + rdlength > len(wire):
            return True
        where = _NAMES_AT.get(rdtype)
        if where is not None and rdlength > where[0]:
            labels, name_end = _name_labels(wire, rdata + where[0])
            spent += max(labels, 0)
            if where[1] and labels >= 0 and name_end < rdata + rdlength:
                spent += max(_name_labels(wire, name_end)[0], 0)
        elif rdtype in _FLAT:
            spent += _FLAT_CHARGE
        if spent > budget:
            return False
        offset = rdata + rdlength
    return True

"""Plain replies rendered without building a dnspython `Message` around them.

Owns: `render_plain`, the bytes that `dns.message.Message.to_wire(max_size=...,
want_shuffle=False)` gives for a reply with one question, answer and authority RRsets, no
additional records and at most an OPT record without options (EDNS version 0, no flags,
a plain rcode), or None when they do not fit `max_size` (the caller then lets dnspython
truncate). The question and the RRsets are still written by dnspython's own `to_wire`
methods, into one file with one compression table, exactly as its `Renderer` does; what
is skipped is the message, the renderer and their bookkeeping.
Must never: decide flags, sections or sizes (the frontend does), or give bytes that differ
from dnspython's (a property test holds the two equal).
"""

from __future__ import annotations

import io
import struct

import dns.name
import dns.rdatatype
import dns.rrset

_HEADER = struct.Struct("!HHHHHH")
_QUESTION_TAIL = struct.Struct("!HH")
_OPT = struct.Struct("!BHHIH")  # root owner, type OPT, class = payload, TTL 0, no rdata


def render_plain(
    txid: int,
    flags: int,
    question: tuple[dns.name.Name, int, int],
    answer: list[dns.rrset.RRset],
    authority: list[dns.rrset.RRset],
    max_size: int,
    edns_payload: int | None = None,
) -> bytes | None:
    """The reply's wire form, or None when it is longer than `max_size`.

    `flags` is the whole 16-bit flags field (rcode below 16 included); `edns_payload`
    None renders no OPT record.
    """
    out = io.BytesIO()
    out.write(bytes(_HEADER.size))
    compress: dict[dns.name.Name, int] = {}
    qname, qtype, qclass = question
    qname.to_wire(out, compress, None)
    out.write(_QUESTION_TAIL.pack(qtype, qclass))
    answers = sum(rrset.to_wire(out, compress, None, want_shuffle=False) for rrset in answer)
    authorities = sum(rrset.to_wire(out, compress, None, want_shuffle=False) for rrset in authority)
    additional = 0
    if edns_payload is not None:
        out.write(_OPT.pack(0, dns.rdatatype.OPT, edns_payload, 0, 0))
        additional = 1
    if out.tell() > max_size:
        return None
    out.seek(0)
    out.write(_HEADER.pack(txid, flags, 1, answers, authorities, additional))
    return out.getvalue()

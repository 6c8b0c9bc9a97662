"""Measured speed-ups of dnspython: byte for byte the same output, the same hashes.

dnspython 2.9's `Name.to_wire(file, ...)` builds a new `Name` for every suffix of the
name (to look it up in the compression table) even when there is no compression table.
That path is what `Rdata.__hash__` takes (`to_digestable`, uncompressed, into a file),
and rdata are hashed twice each time one is added to an RRset: when a reply is parsed,
when the scrubber makes its canonical copy, when a reply is rendered. On the resolver's
miss path that was about a fifth of the CPU of a cold resolution.

`Name.__hash__` adds up every byte of the lowercased name in a Python loop over growing
integers, and `Name.__eq__` goes through `fullcompare` (relation, order and common labels
worked out label by label): names are hashed and compared wherever they key a dict (the
cache, a message's RRset index, the scrubber's sets), about 80 hashes and 40 comparisons
per cold resolution, which was another sixth of its CPU.

Rendering with compression, `parent()` and `canonicalize()` build their names with
`Name(labels)`, which converts and validates every label again though they come from a
valid name: a `Name` per suffix of every name rendered (the question of every reply),
and per ancestor walked in the cache.

Owns: `valid_name(labels)`, a `Name` built without re-validation (for labels known to be
valid), and `install()`, which replaces
- `dns.name.Name.to_wire` by a wrapper that, for an absolute name written into a file,
  writes without a compression table the bytes the `file is None` branch of the same
  method builds (the same labels, lowercased when `canonicalize`), and with one runs
  dnspython's own loop with each suffix made by `valid_name`; relative names and
  `file is None` go to the original unchanged;
- `Name.parent` and `Name.canonicalize` by the same results made by `valid_name`;
- `__hash__` of the A, AAAA, NS, CNAME, PTR, SOA, MX, SRV and TXT rdata classes by the
  hash of the fields their equality compares (the normalised address text; the names,
  whose hash ignores case as their canonical comparison does; the integers; the TXT
  strings, compared exactly) instead of rendering the rdata in
  canonical form each time: equal rdata still hash equal (rdata hashes are salted per
  process anyway, through `bytes`, so no value was ever stable to keep);
- `Message.rcode` by the same computation with `Rcode.make` remembered per value (at most
  4,096);
- `Name.__hash__` by the same function remembered per labels tuple (the same value,
  computed once per spelling; the memo is bounded and emptied when full);
- `Name.__eq__` and `__ne__` by a comparison of the lowercased labels (what
  `fullcompare(...)[1] == 0` decides: the same number of labels, each equal ignoring
  ASCII case), with the identical-labels case first;
- `Name.is_subdomain`, for two absolute names, by a comparison of the other name's labels
  with as many last labels of this one, ignoring ASCII case (what `fullcompare` decides
  label by label from the root, building its relation enum); relative names go to the
  original (the bailiwick checks ask it several times per reply).
Must never: change a single output byte, hash value, comparison or exception (tests
compare each with the original over names, flags, origins and compression tables),
patch a dnspython other than the pinned version it was measured on, or patch twice.
"""

from __future__ import annotations

import struct
from typing import Any

import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.version

MEASURED_ON = "2.9.2"
"""The dnspython version whose `Name.to_wire` this was measured on and tested against."""

_original = dns.name.Name.to_wire
_original_hash = dns.name.Name.__hash__
_original_eq = dns.name.Name.__eq__
_original_ne = dns.name.Name.__ne__
_original_parent = dns.name.Name.parent
_original_canonicalize = dns.name.Name.canonicalize
_original_is_subdomain = dns.name.Name.is_subdomain
_original_rcode = dns.message.Message.rcode

HASH_MEMO_SIZE = 100_000
"""Spellings of names whose hash is remembered before the memo is emptied."""
_hashes: dict[tuple[bytes, ...], int] = {}


def valid_name(labels: tuple[bytes, ...]) -> dns.name.Name:
    """A `Name` of labels already known to be valid (a suffix or the lowercase form of a
    valid name's labels, or labels read by a parser that checked them), made without
    `Name.__init__`'s conversion and validation."""
    name = object.__new__(dns.name.Name)
    object.__setattr__(name, "labels", labels)
    return name


def _to_wire(
    self: dns.name.Name,
    file: Any | None = None,
    compress: dict[dns.name.Name, int] | None = None,
    origin: dns.name.Name | None = None,
    canonicalize: bool = False,
) -> bytes | None:
    if file is None or not self.is_absolute():
        return _original(self, file, compress, origin, canonicalize)
    if compress is None:
        file.write(_original(self, None, None, None, canonicalize))
        return None
    labels = self.labels  # dnspython's loop, with each suffix made by `valid_name`
    for i, label in enumerate(labels):
        suffix = valid_name(labels[i:])
        pos = compress.get(suffix)
        if pos is not None:
            file.write(struct.pack("!H", 0xC000 + pos))
            break
        if len(labels) - i > 1:
            pos = file.tell()
            if pos <= 0x3FFF:
                compress[suffix] = pos
        length = len(label)
        file.write(struct.pack("!B", length))
        if length > 0:
            file.write(label.lower() if canonicalize else label)
    return None


def _parent(self: dns.name.Name) -> dns.name.Name:
    if not self.labels or self.labels == (b"",):  # the empty name, the root
        raise dns.name.NoParent
    return valid_name(self.labels[1:])


def _canonicalize(self: dns.name.Name) -> dns.name.Name:
    return valid_name(tuple(map(bytes.lower, self.labels)))


def _is_subdomain(self: dns.name.Name, other: dns.name.Name) -> bool:
    mine, theirs = self.labels, other.labels
    if not (mine and theirs and mine[-1] == b"" and theirs[-1] == b""):
        return _original_is_subdomain(self, other)  # a relative or empty name
    count = len(theirs)
    if len(mine) < count:
        return False
    tail = mine[len(mine) - count :]
    return tail == theirs or [*map(bytes.lower, tail)] == [*map(bytes.lower, theirs)]


def _hash(self: dns.name.Name) -> int:
    labels = self.labels
    value = _hashes.get(labels)
    if value is None:
        value = _original_hash(self)
        if len(_hashes) >= HASH_MEMO_SIZE:
            _hashes.clear()
        _hashes[labels] = value
    return value


def _eq(self: dns.name.Name, other: object) -> bool:
    if not isinstance(other, dns.name.Name):
        return False
    mine, theirs = self.labels, other.labels
    return mine == theirs or (
        len(mine) == len(theirs) and [*map(bytes.lower, mine)] == [*map(bytes.lower, theirs)]
    )


def _ne(self: dns.name.Name, other: object) -> bool:
    return not _eq(self, other)


def _address_hash(self: Any) -> int:
    return hash(self.address)


def _target_hash(self: Any) -> int:
    return hash(self.target)


def _soa_hash(self: Any) -> int:
    return hash(
        (self.mname, self.rname, self.serial, self.refresh, self.retry, self.expire, self.minimum)
    )


def _mx_hash(self: Any) -> int:
    return hash((self.preference, self.exchange))


def _srv_hash(self: Any) -> int:
    return hash((self.priority, self.weight, self.port, self.target))


def _txt_hash(self: Any) -> int:
    return hash(self.strings)


_RDATA_HASHES = {
    (dns.rdataclass.IN, dns.rdatatype.A): _address_hash,
    (dns.rdataclass.IN, dns.rdatatype.AAAA): _address_hash,
    (dns.rdataclass.IN, dns.rdatatype.NS): _target_hash,
    (dns.rdataclass.IN, dns.rdatatype.CNAME): _target_hash,
    (dns.rdataclass.IN, dns.rdatatype.PTR): _target_hash,
    (dns.rdataclass.IN, dns.rdatatype.SOA): _soa_hash,
    (dns.rdataclass.IN, dns.rdatatype.MX): _mx_hash,
    (dns.rdataclass.IN, dns.rdatatype.SRV): _srv_hash,
    (dns.rdataclass.IN, dns.rdatatype.TXT): _txt_hash,
}
"""The rdata classes whose hash is the hash of the fields their equality compares (names
in SOA, MX and SRV are compared ignoring case, in their canonical form, and so hash)."""


_rcodes: dict[int, Any] = {}


def _rcode(self: dns.message.Message) -> Any:
    value = (int(self.flags) & 0x000F) | ((int(self.ednsflags) >> 20) & 0xFF0)
    found = _rcodes.get(value)
    if found is None:
        found = _rcodes[value] = dns.rcode.Rcode.make(value)
    return found


def rdata_classes() -> dict[Any, Any]:
    """Each rdata class `install` gives a field hash, with that hash function."""
    return {
        dns.rdata.get_rdata_class(rdclass, rdtype): function
        for (rdclass, rdtype), function in _RDATA_HASHES.items()
    }


def install() -> bool:
    """Put the fast paths in place; True when they are in place (False: another dnspython)."""
    if dns.name.Name.to_wire is _to_wire:
        return True
    if dns.version.version != MEASURED_ON:
        return False
    dns.name.Name.to_wire = _to_wire  # type: ignore[method-assign,assignment]
    dns.name.Name.__hash__ = _hash  # type: ignore[method-assign,assignment]
    dns.name.Name.__eq__ = _eq  # type: ignore[method-assign,assignment]
    dns.name.Name.__ne__ = _ne  # type: ignore[method-assign,assignment]
    dns.name.Name.parent = _parent  # type: ignore[method-assign]
    dns.name.Name.canonicalize = _canonicalize  # type: ignore[method-assign]
    dns.name.Name.is_subdomain = _is_subdomain  # type: ignore[method-assign]
    for cls, function in rdata_classes().items():
        cls.__hash__ = function
    dns.message.Message.rcode = _rcode  # type: ignore[method-assign]
    return True


def originals() -> dict[str, Any]:
    """dnspython's own `Name` methods this module replaces, by attribute name."""
    return {
        "to_wire": _original,
        "__hash__": _original_hash,
        "__eq__": _original_eq,
        "__ne__": _original_ne,
        "parent": _original_parent,
        "canonicalize": _original_canonicalize,
        "is_subdomain": _original_is_subdomain,
    }


def original_rcode() -> Any:
    """dnspython's own `Message.rcode`."""
    return _original_rcode

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

Owns: `install()`, which replaces
- `dns.name.Name.to_wire` by a wrapper that, for an absolute name written into a file
  without a compression table, writes the bytes the `file is None` branch of the same
  method builds (the same labels, lowercased when `canonicalize`), and otherwise calls
  the original unchanged;
- `Name.__hash__` by the same function remembered per labels tuple (the same value,
  computed once per spelling; the memo is bounded and emptied when full);
- `Name.__eq__` and `__ne__` by a comparison of the lowercased labels (what
  `fullcompare(...)[1] == 0` decides: the same number of labels, each equal ignoring
  ASCII case), with the identical-labels case first.
Must never: change a single output byte, hash value, comparison or exception (tests
compare each with the original over names, flags, origins and compression tables),
patch a dnspython other than the pinned version it was measured on, or patch twice.
"""

from __future__ import annotations

from typing import Any

import dns.name
import dns.version

MEASURED_ON = "2.9.2"
"""The dnspython version whose `Name.to_wire` this was measured on and tested against."""

_original = dns.name.Name.to_wire
_original_hash = dns.name.Name.__hash__
_original_eq = dns.name.Name.__eq__
_original_ne = dns.name.Name.__ne__

HASH_MEMO_SIZE = 100_000
"""Spellings of names whose hash is remembered before the memo is emptied."""
_hashes: dict[tuple[bytes, ...], int] = {}


def _to_wire(
    self: dns.name.Name,
    file: Any | None = None,
    compress: dict[dns.name.Name, int] | None = None,
    origin: dns.name.Name | None = None,
    canonicalize: bool = False,
) -> bytes | None:
    if file is not None and compress is None and self.is_absolute():
        file.write(_original(self, None, None, None, canonicalize))
        return None
    return _original(self, file, compress, origin, canonicalize)


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
    return True


def original_to_wire() -> Any:
    """dnspython's own `Name.to_wire` (for tests comparing the two)."""
    return _original


def originals() -> dict[str, Any]:
    """dnspython's own `Name` methods this module replaces, by attribute name."""
    return {
        "to_wire": _original,
        "__hash__": _original_hash,
        "__eq__": _original_eq,
        "__ne__": _original_ne,
    }

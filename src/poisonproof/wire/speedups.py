"""One measured speed-up of dnspython, byte for byte the same output.

dnspython 2.9's `Name.to_wire(file, ...)` builds a new `Name` for every suffix of the
name (to look it up in the compression table) even when there is no compression table.
That path is what `Rdata.__hash__` takes (`to_digestable`, uncompressed, into a file),
and rdata are hashed twice each time one is added to an RRset: when a reply is parsed,
when the scrubber makes its canonical copy, when a reply is rendered. On the resolver's
miss path that was about a fifth of the CPU of a cold resolution.

Owns: `install()`, which replaces `dns.name.Name.to_wire` by a wrapper that, for an
absolute name written into a file without a compression table, writes the bytes the
`file is None` branch of the same method builds (the same labels, lowercased when
`canonicalize`), and otherwise calls the original unchanged.
Must never: change a single output byte or exception (tests compare the two over names,
flags, origins and compression tables), patch a dnspython other than the pinned version
it was measured on, or patch twice.
"""

from __future__ import annotations

from typing import Any

import dns.name
import dns.version

MEASURED_ON = "2.9.2"
"""The dnspython version whose `Name.to_wire` this was measured on and tested against."""

_original = dns.name.Name.to_wire


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


def install() -> bool:
    """Put the fast path in place; True when it is in place (False: another dnspython)."""
    if dns.name.Name.to_wire is _to_wire:
        return True
    if dns.version.version != MEASURED_ON:
        return False
    dns.name.Name.to_wire = _to_wire  # type: ignore[method-assign,assignment]
    return True


def original_to_wire() -> Any:
    """dnspython's own `Name.to_wire` (for tests comparing the two)."""
    return _original

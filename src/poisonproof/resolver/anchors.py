"""Trust anchors: where the resolver's chain of trust starts, and where it must not.

Owns: the DS and DNSKEY records configured as trust anchors (the IANA root KSKs built in;
lines of zone-file text from configuration, a trust-anchor file, or a scenario), the
negative trust anchors (`domain-insecure`: names below which nothing is validated), and
finding the closest anchor above a name.
Must never: fetch or validate anything (the chain in `resolver/chain.py` does that).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone

IANA_ROOT_DS = (
    # KSK-2017 and KSK-2024, from https://data.iana.org/root-anchors/root-anchors.xml
    ". 172800 IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D",
    ". 172800 IN DS 38696 8 2 683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16",
)


class AnchorError(ValueError):
    """A trust anchor that cannot be used; the text names the source and the problem."""


@dataclass
class TrustAnchors:
    """DS/DNSKEY anchors per zone, and negative anchors."""

    ds: dict[dns.name.Name, dns.rrset.RRset] = field(default_factory=dict)
    dnskey: dict[dns.name.Name, dns.rrset.RRset] = field(default_factory=dict)
    insecure: set[dns.name.Name] = field(default_factory=set)
    malformed: dict[dns.name.Name, str] = field(default_factory=dict)
    """Zones whose anchor DS has a digest of the wrong length for its type: such an
    anchor matches no key, so the zone is bogus (not silently unanchored)."""

    @classmethod
    def iana_root(cls) -> TrustAnchors:
        anchors = cls()
        anchors.add_text(IANA_ROOT_DS, source="built-in IANA root anchors")
        return anchors

    def __bool__(self) -> bool:
        return bool(self.ds or self.dnskey or self.malformed)

    def add_text(self, lines: Iterable[str], source: str = "trust anchor") -> None:
        """Add anchors from zone-file lines (`owner [ttl] [IN] DS|DNSKEY rdata`)."""
        for number, line in enumerate(lines, 1):
            text = line.split(";", 1)[0].strip()
            if not text:
                continue
            try:
                rrset = _parse_line(text)
            except (dns.exception.DNSException, ValueError) as error:
                if "digest length inconsistent" in str(error):
                    owner = dns.name.from_text(text.split()[0]).canonicalize()
                    self.malformed[owner] = f"{source}:{number}: {error}"
                    continue
                raise AnchorError(f"{source}:{number}: {error}: {text!r}") from None
            if rrset.rdtype == dns.rdatatype.DS:
                table = self.ds
            elif rrset.rdtype == dns.rdatatype.DNSKEY:
                table = self.dnskey
            else:
                raise AnchorError(
                    f"{source}:{number}: a trust anchor is a DS or DNSKEY record, "
                    f"not {dns.rdatatype.to_text(rrset.rdtype)}"
                )
            name = rrset.name.canonicalize()
            if name in table:
                table[name].union_update(rrset)
            else:
                rrset.name = name
                table[name] = rrset

    def add_file(self, path: Path) -> None:
        try:
            text = path.read_text()
        except OSError as error:
            raise AnchorError(f"{path}: cannot read the trust anchor file: {error}") from None
        self.add_text(_bind_style_to_lines(text), source=str(path))

    def add_insecure(self, name: dns.name.Name) -> None:
        self.insecure.add(name.canonicalize())

    def closest(self, name: dns.name.Name) -> dns.name.Name | None:
        """The deepest anchored zone at or above `name`, or None (then nothing validates).

        A negative anchor at or above `name` and below that anchor wins: None.
        """
        candidate = name.canonicalize()
        while True:
            if candidate in self.insecure:
                return None
            if candidate in self.ds or candidate in self.dnskey or candidate in self.malformed:
                return candidate
            if candidate == dns.name.root:
                return None
            candidate = candidate.parent()


def _parse_line(text: str) -> dns.rrset.RRset:
    tokens = text.split()
    # owner [ttl] [class] type rdata...: fill in what zone-file syntax lets one omit
    index = 1
    ttl = 3600
    if index < len(tokens) and tokens[index].isdigit():
        ttl = int(tokens[index])
        index += 1
    if index < len(tokens) and tokens[index].upper() == "IN":
        index += 1
    if index >= len(tokens):
        raise ValueError("no record type")
    rdtype = tokens[index]
    rdata = " ".join(tokens[index + 1 :])
    return dns.rrset.from_text(tokens[0], ttl, dns.rdataclass.IN, rdtype, rdata)


def _bind_style_to_lines(text: str) -> list[str]:
    """Zone-file lines, with parenthesised multi-line records joined."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.split(";", 1)[0]
        if line.strip().startswith("$"):
            continue
        pending += " " + line
        if pending.count("(") > pending.count(")"):
            continue
        joined = pending.replace("(", " ").replace(")", " ").strip()
        pending = ""
        if joined:
            lines.append(joined)
    return lines

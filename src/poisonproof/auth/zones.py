"""Zone files in, indexed zones out.

Owns: reading RFC 1035 master files through dnspython, reporting every problem as
`file:line: what is wrong`, and the per-zone indexes the engine needs (existing names
including empty non-terminals, delegation points, NSEC/NSEC3 chains).
Must never: answer queries (that is `poisonproof.auth.engine`) or touch the network.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from pathlib import Path

import dns.dnssec
import dns.exception
import dns.name
import dns.node
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.NSEC3
import dns.rdtypes.ANY.SOA
import dns.rrset
import dns.zone


class ZoneError(Exception):
    """A zone file that cannot be served; the message is `file:line: what is wrong`."""


@dataclass
class ServedZone:
    """One loaded zone and the indexes the engine looks things up in."""

    origin: dns.name.Name
    zone: dns.zone.Zone
    source: str
    soa_ttl: int = 0
    soa: dns.rdtypes.ANY.SOA.SOA | None = None
    names: set[dns.name.Name] = field(default_factory=set)
    """Every name that exists in the zone: owners and their ancestors up to the origin."""
    cuts: set[dns.name.Name] = field(default_factory=set)
    """Delegation points: names below the origin that own an NS RRset."""
    nsec_owners: list[dns.name.Name] = field(default_factory=list)
    nsec3_param: dns.rdtypes.ANY.NSEC3.NSEC3 | None = None
    nsec3_hashes: list[str] = field(default_factory=list)
    nsec3_by_hash: dict[str, dns.name.Name] = field(default_factory=dict)
    rrsets: dict[tuple[dns.name.Name, int, int], dns.rrset.RRset] = field(default_factory=dict)
    """RRsets built for answers, kept per zone (the lookup's memo; never mutate them)."""

    @property
    def negative_ttl(self) -> int:
        """RFC 2308 §3: the SOA's TTL in a negative answer is min(SOA TTL, SOA MINIMUM)."""
        assert self.soa is not None
        return min(self.soa_ttl, self.soa.minimum)

    @property
    def signed(self) -> bool:
        return bool(self.nsec_owners) or bool(self.nsec3_hashes)

    def node(self, name: dns.name.Name) -> dns.node.Node | None:
        return self.zone.get_node(name)

    def nsec_covering(self, name: dns.name.Name) -> dns.name.Name | None:
        """The owner of the NSEC record whose span contains `name` (canonical order)."""
        if not self.nsec_owners:
            return None
        index = bisect.bisect_right(self.nsec_owners, name) - 1
        return self.nsec_owners[index]  # index -1 wraps to the last NSEC, as the chain does

    def nsec3_hash(self, name: dns.name.Name) -> str:
        assert self.nsec3_param is not None
        p = self.nsec3_param
        return dns.dnssec.nsec3_hash(name, p.salt, p.iterations, p.algorithm).lower()

    def nsec3_matching(self, name: dns.name.Name) -> dns.name.Name | None:
        return self.nsec3_by_hash.get(self.nsec3_hash(name))

    def nsec3_covering(self, name: dns.name.Name) -> dns.name.Name | None:
        if not self.nsec3_hashes:
            return None
        digest = self.nsec3_hash(name)
        index = bisect.bisect_right(self.nsec3_hashes, digest) - 1
        return self.nsec3_by_hash[self.nsec3_hashes[index]]


def _index(served: ServedZone) -> None:
    zone, origin = served.zone, served.origin
    soa_rdataset = zone.get_rdataset(origin, dns.rdatatype.SOA)
    assert soa_rdataset is not None
    served.soa = soa_rdataset[0]  # type: ignore[assignment]
    served.soa_ttl = soa_rdataset.ttl
    nsec3_owners: list[dns.name.Name] = []
    for name, node in zone.nodes.items():
        owner = name if name.is_absolute() else name.derelativize(origin)
        types = {rds.rdtype for rds in node.rdatasets}
        if dns.rdatatype.NSEC3 in types:
            nsec3_owners.append(owner)
            continue  # NSEC3 owners are hashes, not names that exist in the zone
        ancestor = owner
        while ancestor not in served.names:
            served.names.add(ancestor)
            if ancestor == origin:
                break
            ancestor = ancestor.parent()
        if dns.rdatatype.NS in types and owner != origin:
            served.cuts.add(owner)
        if dns.rdatatype.NSEC in types:
            served.nsec_owners.append(owner)
    served.nsec_owners.sort()
    param = zone.get_rdataset(origin, dns.rdatatype.NSEC3PARAM)
    if param is not None and nsec3_owners:
        served.nsec3_param = param[0]  # type: ignore[assignment]
        for owner in nsec3_owners:
            served.nsec3_by_hash[owner.labels[0].decode("ascii").lower()] = owner
        served.nsec3_hashes = sorted(served.nsec3_by_hash)


_LINE_PREFIX = re.compile(r"^(?P<file>.*?):(?P<line>\d+): (?P<what>.*)$", re.S)


def _content_line(lines: list[str], reported: int) -> int:
    """dnspython reports the tokenizer's line, which may be past the faulty record's
    newline; step back to the last line at or before it that holds a record."""
    line = min(reported, len(lines))
    while line > 1:
        text = lines[line - 1].split(";", 1)[0].strip()
        if text and text != ")":
            break
        line -= 1
    return line


def _check_out_of_zone(path: str, lines: list[str], origin: dns.name.Name) -> None:
    """dnspython silently drops records outside the origin; we refuse the file instead."""
    current = origin
    for number, raw in enumerate(lines, start=1):
        text = raw.split(";", 1)[0]
        if not text.strip() or text[0].isspace():
            continue
        first = text.split()[0]
        if first.upper() == "$ORIGIN" and len(text.split()) > 1:
            current = dns.name.from_text(text.split()[1], origin=current)
            continue
        if first.startswith("$") or first == "@":
            continue
        try:
            owner = dns.name.from_text(first, origin=current)
        except dns.exception.DNSException:
            continue  # dnspython's parser reports malformed owners with their own message
        if not owner.is_subdomain(origin):
            raise ZoneError(f"{path}:{number}: owner {owner} is outside the zone origin {origin}")


def load_zone(path: str | Path, origin: str | dns.name.Name | None = None) -> ServedZone:
    """Load and index one master file; raise `ZoneError` naming file and line on any problem."""
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ZoneError(f"{path}: cannot read zone file: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise ZoneError(f"{path}: zone file is not UTF-8 text: {error}") from None
    lines = text.splitlines()
    if isinstance(origin, str):
        origin = dns.name.from_text(origin)
    try:
        zone = dns.zone.from_text(
            text, origin=origin, relativize=False, filename=path, check_origin=False
        )
        if zone.origin is None:  # no $ORIGIN and none given (an empty file, say)
            raise ZoneError(f"{path}:1: the zone has no origin; add $ORIGIN or name it")
        zone.check_origin()  # (dnspython asserts the origin is set: checked above)
    except dns.exception.SyntaxError as error:
        match = _LINE_PREFIX.match(str(error))
        if match:
            line = _content_line(lines, int(match["line"]))
            shown = lines[line - 1].strip() if 0 < line <= len(lines) else ""
            where = f" (in: {shown!r})" if shown else ""
            raise ZoneError(f"{path}:{line}: {match['what']}{where}") from None
        raise ZoneError(f"{path}: {error}") from None
    except dns.zone.NoSOA:
        raise ZoneError(f"{path}:1: the zone has no SOA record at its origin") from None
    except dns.zone.NoNS:
        raise ZoneError(f"{path}:1: the zone has no NS records at its origin") from None
    except dns.exception.DNSException as error:
        raise ZoneError(f"{path}:1: {error}") from None
    except ValueError as error:  # dnspython's own checks, e.g. "add() has non-origin SOA"
        raise ZoneError(f"{path}:1: {error}") from None
    _check_out_of_zone(path, lines, zone.origin)
    served = ServedZone(origin=zone.origin, zone=zone, source=path)
    _index(served)
    return served


class ZoneSet:
    """The zones a server answers for, looked up by the most specific enclosing origin."""

    def __init__(self, zones: list[ServedZone]) -> None:
        self._by_origin: dict[dns.name.Name, ServedZone] = {}
        for served in zones:
            if served.origin in self._by_origin:
                raise ZoneError(
                    f"{served.source}:1: zone {served.origin} is already served from "
                    f"{self._by_origin[served.origin].source}"
                )
            self._by_origin[served.origin] = served

    def __iter__(self):  # type: ignore[no-untyped-def]  # noqa: ANN204
        return iter(self._by_origin.values())

    def __len__(self) -> int:
        return len(self._by_origin)

    def find(self, name: dns.name.Name) -> ServedZone | None:
        """The served zone with the longest origin that `name` is at or below."""
        candidate = name
        while True:
            served = self._by_origin.get(candidate)
            if served is not None:
                return served
            if candidate == dns.name.root or len(candidate.labels) == 0:
                return None
            candidate = candidate.parent()

    def find_parent_side(self, name: dns.name.Name) -> ServedZone | None:
        """The zone that holds the delegation of `name` (for DS, answered by the parent)."""
        if name == dns.name.root:
            return None
        return self.find(name.parent())


def load_zones(specs: list[str]) -> ZoneSet:
    """Load `FILE` or `ORIGIN=FILE` specs; any broken file aborts the whole set."""
    zones = []
    for spec in specs:
        origin: str | None = None
        path = spec
        if "=" in spec:
            origin, path = spec.split("=", 1)
        zones.append(load_zone(path, origin))
    return ZoneSet(zones)

"""Root hints: where iteration starts.

Owns: the IANA root hints built in (a.root-servers.net ... m.root-servers.net, IPv4 and
IPv6), and loading a hints file (a zone-file fragment of `. NS` and A/AAAA records) for
labs. Must never: do I/O beyond reading the given file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone

_IANA = [
    ("a", "198.41.0.4", "2001:503:ba3e::2:30"),
    ("b", "170.247.170.2", "2801:1b8:10::b"),
    ("c", "192.33.4.12", "2001:500:2::c"),
    ("d", "199.7.91.13", "2001:500:2d::d"),
    ("e", "192.203.230.10", "2001:500:a8::e"),
    ("f", "192.5.5.241", "2001:500:2f::f"),
    ("g", "192.112.36.4", "2001:500:12::d0d"),
    ("h", "198.97.190.53", "2001:500:1::53"),
    ("i", "192.36.148.17", "2001:7fe::53"),
    ("j", "192.58.128.30", "2001:503:c27::2:30"),
    ("k", "193.0.14.129", "2001:7fd::1"),
    ("l", "199.7.83.42", "2001:500:9f::42"),
    ("m", "202.12.27.33", "2001:dc3::35"),
]


class HintsError(Exception):
    """A root hints file that cannot be used."""


@dataclass(frozen=True)
class RootHints:
    ns: dns.rrset.RRset
    addresses: dict[dns.name.Name, list[str]]

    def all_addresses(self) -> list[str]:
        return [a for names in self.addresses.values() for a in names]


def iana_root_hints() -> RootHints:
    ns = dns.rrset.from_text_list(
        dns.name.root,
        3_600_000,
        "IN",
        "NS",
        [f"{letter}.root-servers.net." for letter, _, _ in _IANA],
    )
    addresses = {
        dns.name.from_text(f"{letter}.root-servers.net."): [v4, v6] for letter, v4, v6 in _IANA
    }
    return RootHints(ns, addresses)


def load_root_hints(path: str | Path) -> RootHints:
    """Read a hints file: `. NS name` records and the names' A/AAAA records."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise HintsError(f"{path}: cannot read root hints: {error.strerror or error}") from None
    try:
        zone = dns.zone.from_text(
            text, origin=dns.name.root, relativize=False, check_origin=False, filename=str(path)
        )
    except dns.exception.DNSException as error:
        raise HintsError(f"{path}: {error}") from None
    ns_rdataset = zone.get_rdataset(dns.name.root, dns.rdatatype.NS)
    if ns_rdataset is None:
        raise HintsError(f"{path}: no '. NS' records in the root hints")
    ns = dns.rrset.RRset(dns.name.root, dns.rdataclass.IN, dns.rdatatype.NS)
    ns.update(ns_rdataset)
    addresses: dict[dns.name.Name, list[str]] = {}
    for rdata in ns:
        target = rdata.target  # type: ignore[attr-defined]
        found = []
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            rds = zone.get_rdataset(target, rdtype)
            if rds is not None:
                found.extend(r.address for r in rds)  # type: ignore[attr-defined]
        addresses[target] = found
    if not any(addresses.values()):
        raise HintsError(f"{path}: none of the root name servers has an A or AAAA record")
    return RootHints(ns, addresses)

"""The signed lab world: every zone of the lab world signed, DS records at each parent.

Owns: the DNSSEC plan of the world (which zone is signed with which algorithm and which
denial of existence: `SIGNING_PLAN`), signing the world's zone texts bottom-up with
`poisonproof.auth.signing` (children first, so each child's DS is in its parent before the
parent is signed), the deliberate failures (`Breakage`, unsigned zones) and the outcome a
validator must reach for each zone (`SignedZone.expected`), and the root trust anchor
files (zone-file DS for Unbound / Knot Resolver, `trust-anchors { }` for delv and named).

Must never: serve or validate (the `AuthServer`s of `poisonproof.lab.world` serve what it
writes; resolvers validate), write outside the directory it is given, or sign anything
but the lab world's own zones.

The failures a lab can show, per zone (RFC 4035 §4.3 states, as a validator that trusts
the root anchor reaches them):

- unsigned (`unsigned=`): no DNSKEY, no RRSIG, and no DS at the parent, whose signed
  NSEC/NSEC3 proves the DS absent: the zone (and everything below it) is *insecure*.
- `Breakage.EXPIRED_SIGNATURE`: signed with an inception and expiration in the past (the
  signatures expired a day before `now`): *bogus*.
- `Breakage.MISSING_DS`: the zone is signed, but its parent publishes no DS for it. That
  does NOT make it bogus: the parent's signed denial proves there is no DS, so the chain
  of trust ends there and the zone is *insecure*, exactly like an unsigned zone (its
  signatures are never checked by a validator that starts from the root).
- `Breakage.WRONG_KEY`: the parent publishes a DS for a KSK that the zone does not
  publish (a "lost" key, thrown away after the DS was made): no DNSKEY of the zone
  matches the DS, so the zone is *bogus*.

A zone below an insecure zone is insecure; below a bogus one, bogus. The root can be
broken (EXPIRED_SIGNATURE, or WRONG_KEY, whose trust anchor then names the lost key)
but not unsigned or MISSING_DS: it holds the trust anchor.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import dns.dnssec
import dns.dnssectypes
import dns.exception
import dns.name

from poisonproof.auth.signing import ALGORITHMS, generate_key, sign_zone_file

if TYPE_CHECKING:
    from poisonproof.auth.zones import ServedZone


class ZoneSource(Protocol):
    """What `sign_world` signs: the lab world (`poisonproof.lab.world.World`), or any set
    of zones with distinct origins (the attack arena's, `poisonproof.lab.arena`)."""

    def load_zones(self) -> dict[str, ServedZone]:
        """File name -> the zone as loaded (its origin is what matters here)."""
        ...

    def zone_text(self, file_name: str) -> str:
        """The text to sign for that file."""
        ...


DEFAULT_ALGORITHM = "ECDSAP256SHA256"
SIGNING_PLAN: dict[str, tuple[str, bool]] = {
    ".": ("RSASHA256", False),
    "com.": ("RSASHA256", True),
    "net.": ("ECDSAP256SHA256", True),
    "bank.example.": ("ECDSAP256SHA256", True),
}
"""Origin -> (algorithm, NSEC3?) where it differs from ECDSAP256SHA256 with NSEC.

The root and com. are RSASHA256 (as the real ones are), every other zone
ECDSAP256SHA256; com., net. and the victim bank.example. deny with NSEC3 (no opt-out,
0 extra iterations, no salt: RFC 9276), every other zone with NSEC.
"""

SIGNATURE_LIFETIME_DAYS = 30
INCEPTION_SLACK = datetime.timedelta(hours=1)
"""Inception is this long before `now`, for validators whose clock is a little behind."""

SOURCE_SUBDIR = "source"
"""The zone texts as signed: relocated, with their children's DS records added."""
KEYS_SUBDIR = "keys"
DS_SUBDIR = "ds"
TRUST_ANCHOR_FILE = "trust-anchor.ds"
TRUST_ANCHOR_BIND_FILE = "trust-anchor.conf"


class Breakage(enum.Enum):
    """A deliberately broken link of the chain of trust (see the module docstring)."""

    EXPIRED_SIGNATURE = "expired"
    """Signatures whose validity ended before `now`: bogus."""
    MISSING_DS = "missing-ds"
    """Signed, but no DS at the parent: insecure (the parent proves the DS absent), not bogus."""
    WRONG_KEY = "wrong-key"
    """The parent's DS is for a key the zone does not publish: bogus."""


SECURE = "secure"
INSECURE = "insecure"
BOGUS = "bogus"


@dataclasses.dataclass(frozen=True)
class SignedZone:
    """One zone of a signed world: how it was signed and what a validator must conclude."""

    origin: str
    file_name: str
    path: Path
    """The file to serve (signed, or the plain text when unsigned)."""
    parent: str | None
    """The origin of the zone that delegates it (None for the root)."""
    algorithm: str | None
    """None when the zone is unsigned."""
    nsec3: bool
    breakage: Breakage | None
    expected: str
    """`SECURE`, `INSECURE` or `BOGUS`: the validation outcome of a name in this zone."""
    key_tags: dict[str, int] = dataclasses.field(default_factory=dict)
    """`ksk` / `zsk` -> key tag of the DNSKEYs the zone publishes."""
    ds_at_parent: tuple[str, ...] = ()
    """The DS records (zone-file lines) its parent publishes for it."""

    @property
    def signed(self) -> bool:
        return self.algorithm is not None

    @property
    def denial(self) -> str | None:
        if not self.signed:
            return None
        return "NSEC3" if self.nsec3 else "NSEC"

    def to_json(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "file": str(self.path),
            "algorithm": self.algorithm,
            "denial": self.denial,
            "breakage": self.breakage.value if self.breakage else None,
            "expected": self.expected,
            "key_tags": self.key_tags,
            "ds_at_parent": list(self.ds_at_parent),
        }


@dataclasses.dataclass(frozen=True)
class SignedWorld:
    """The world's zones signed into `zone_dir` (same file names as the world's)."""

    world: ZoneSource
    zone_dir: Path
    zones: dict[str, SignedZone]
    """By origin (absolute, lower-case text), root first."""
    trust_anchor: Path
    """The root's DS in zone-file format (Unbound `trust-anchor-file:` or
    `auto-trust-anchor-file:`, Knot Resolver `trust_anchors.add_file()`); not for delv."""
    trust_anchor_bind: Path
    """`trust-anchors { . static-ds ...; };` (`delv -a FILE`, named.conf `include`)."""
    root_ds: str
    """The DS record of the trust anchor (one zone-file line)."""

    def zone(self, origin: str) -> SignedZone:
        return self.zones[_origin_text(origin)]

    def to_json(self) -> dict[str, Any]:
        return {
            "zone_dir": str(self.zone_dir),
            "trust_anchor": str(self.trust_anchor),
            "trust_anchor_bind": str(self.trust_anchor_bind),
            "root_ds": self.root_ds,
            "zones": [z.to_json() for z in self.zones.values()],
        }


def _origin_text(zone: str) -> str:
    """`bank.example`, `BANK.example.` -> `bank.example.`; `.` stays `.`."""
    try:
        return dns.name.from_text(zone.strip()).to_text().lower()
    except dns.exception.DNSException as error:
        raise ValueError(f"{zone!r} is not a zone name: {error}") from None


def parse_breakage(text: str) -> tuple[str, Breakage]:
    """`ZONE=expired|missing-ds|wrong-key` -> (origin, Breakage); ValueError otherwise."""
    zone, sep, kind = text.partition("=")
    choices = ", ".join(b.value for b in Breakage)
    if not sep or not zone.strip():
        raise ValueError(f"{text!r}: expected ZONE=KIND, KIND one of {choices}")
    try:
        breakage = Breakage(kind.strip().lower())
    except ValueError:
        raise ValueError(f"{text!r}: unknown breakage {kind!r}; choose one of {choices}") from None
    return _origin_text(zone), breakage


def _parents(origins: Iterable[str]) -> dict[str, str | None]:
    """Each origin -> the deepest other origin above it (None for the root)."""
    names = {o: dns.name.from_text(o) for o in origins}
    parents: dict[str, str | None] = {}
    for origin, name in names.items():
        above = [o for o, n in names.items() if n != name and name.is_subdomain(n)]
        parents[origin] = max(above, key=lambda o: len(names[o]), default=None)
    return parents


def _ds_line(origin: str, ttl: int, dnskey: Any) -> str:
    ds = dns.dnssec.make_ds(origin, dnskey, dns.dnssectypes.DSDigest.SHA256)
    return f"{origin} {ttl} IN DS {ds.to_text()}"


def sign_world(
    world: ZoneSource,
    directory: Path,
    *,
    unsigned: Iterable[str] = frozenset(),
    broken: Mapping[str, Breakage] | None = None,
    now: datetime.datetime | None = None,
) -> SignedWorld:
    """Sign `world`'s zones into `directory` and write the root trust anchor files.

    `unsigned`: origins left unsigned (no DS at their parents either). `broken`: origin ->
    `Breakage`. Zone names may omit the final dot. Keys are kept in `directory/keys` and
    reused when signing into the same directory again, so the trust anchor stays put.
    Writes `directory/<zone file>` (what to serve: `start_world(..., zone_dir=directory)`),
    `source/` (the texts signed), `ds/`, `trust-anchor.ds` and `trust-anchor.conf`.
    ValueError for an unknown zone, a zone both unsigned and broken, or an unsigned root
    or a root with a missing DS.
    """
    broken = dict(broken or {})
    now = now or datetime.datetime.now(datetime.UTC)
    files = {str(z.origin).lower(): f for f, z in world.load_zones().items()}
    known = ", ".join(sorted(files))
    unsigned_set = {_origin_text(z) for z in unsigned}
    broken_map = {_origin_text(z): b for z, b in broken.items()}
    for origin in unsigned_set | set(broken_map):
        if origin not in files:
            raise ValueError(f"{origin} is not a zone of the lab world ({known})")
    if both := sorted(unsigned_set & set(broken_map)):
        raise ValueError(f"{', '.join(both)}: a zone is either unsigned or broken, not both")
    if "." in unsigned_set:
        raise ValueError("the root cannot be unsigned: it holds the trust anchor")
    if broken_map.get(".") is Breakage.MISSING_DS:
        raise ValueError("the root has no parent, so no DS to leave out")

    directory.mkdir(parents=True, exist_ok=True)
    source_dir = directory / SOURCE_SUBDIR
    ds_dir = directory / DS_SUBDIR
    key_dir = directory / KEYS_SUBDIR
    for sub in (source_dir, ds_dir):  # nothing left from an earlier signing (keys stay)
        shutil.rmtree(sub, ignore_errors=True)
        sub.mkdir()
    parents = _parents(files)
    texts = {origin: world.zone_text(files[origin]) for origin in files}
    extra_ds: dict[str, list[str]] = {origin: [] for origin in files}
    signed: dict[str, SignedZone] = {}

    # Deepest first: a child's DS is in its parent's text before the parent is signed.
    for origin in sorted(files, key=lambda o: (-len(dns.name.from_text(o)), o)):
        file_name = files[origin]
        parent = parents[origin]
        breakage = broken_map.get(origin)
        text = texts[origin]
        if extra_ds[origin]:
            text += (
                "\n; DS records of the signed children (poisonproof.lab.signed_world)\n"
                + "\n".join(extra_ds[origin])
                + "\n"
            )
        source = source_dir / file_name
        source.write_text(text, encoding="utf-8")
        target = directory / file_name
        if origin in unsigned_set:
            target.write_text(text, encoding="utf-8")
            signed[origin] = SignedZone(
                origin, file_name, target, parent, None, False, None, INSECURE
            )
            continue
        algorithm, nsec3 = SIGNING_PLAN.get(origin, (DEFAULT_ALGORITHM, False))
        inception = now - INCEPTION_SLACK
        if breakage is Breakage.EXPIRED_SIGNATURE:
            inception = now - datetime.timedelta(days=SIGNATURE_LIFETIME_DAYS + 1)
        result = sign_zone_file(
            source,
            out=target,
            ds_out=ds_dir / f"{file_name}.ds",
            key_dir=key_dir,
            algorithm=algorithm,
            nsec3=nsec3,
            lifetime_days=SIGNATURE_LIFETIME_DAYS,
            inception=inception,
        )
        ds_lines = list(result.ds_records)
        if breakage is Breakage.WRONG_KEY:
            lost = generate_key(algorithm)  # made, its DS handed out, then thrown away
            lost_key = dns.dnssec.make_dnskey(lost.public_key(), ALGORITHMS[algorithm], flags=257)
            ttl = int(ds_lines[0].split()[1])
            ds_lines = [_ds_line(origin, ttl, lost_key)]
        elif breakage is Breakage.MISSING_DS:
            ds_lines = []
        if parent is not None:
            extra_ds[parent].extend(ds_lines)
        signed[origin] = SignedZone(
            origin,
            file_name,
            target,
            parent,
            algorithm,
            nsec3,
            breakage,
            SECURE,
            key_tags=dict(result.key_tags),
            ds_at_parent=tuple(ds_lines),
        )

    zones = _with_expectations(signed)
    root = zones["."]
    anchor = root.ds_at_parent[0]
    trust_anchor = directory / TRUST_ANCHOR_FILE
    trust_anchor.write_text(
        "; The root trust anchor of the poisonproof lab world (zone-file format).\n"
        "; Unbound: trust-anchor-file: FILE (or auto-trust-anchor-file: a writable copy)\n"
        "; Knot Resolver: trust_anchors.add_file('FILE', true)\n"
        f"{anchor}\n",
        encoding="utf-8",
    )
    _, _, _, _, tag, alg, digest_type, digest = anchor.split(maxsplit=7)
    trust_anchor_bind = directory / TRUST_ANCHOR_BIND_FILE
    trust_anchor_bind.write_text(
        "# The root trust anchor of the poisonproof lab world.\n"
        "# delv -a FILE +root NAME; named: include this file in named.conf.\n"
        "trust-anchors {\n"
        f'    . static-ds {tag} {alg} {digest_type} "{digest.replace(" ", "")}";\n'
        "};\n",
        encoding="utf-8",
    )
    return SignedWorld(world, directory, zones, trust_anchor, trust_anchor_bind, anchor)


def _with_expectations(zones: dict[str, SignedZone]) -> dict[str, SignedZone]:
    """Fill in `expected` top-down (a zone inherits an insecure or bogus parent's state);
    return the zones root first."""
    ordered = sorted(zones.values(), key=lambda z: (len(dns.name.from_text(z.origin)), z.origin))
    result: dict[str, SignedZone] = {}
    for zone in ordered:
        above = result[zone.parent].expected if zone.parent is not None else SECURE
        own = SECURE
        if not zone.signed or zone.breakage is Breakage.MISSING_DS:
            own = INSECURE
        elif zone.breakage in (Breakage.EXPIRED_SIGNATURE, Breakage.WRONG_KEY):
            own = BOGUS
        expected = above if above != SECURE else own
        result[zone.origin] = dataclasses.replace(zone, expected=expected)
    return result

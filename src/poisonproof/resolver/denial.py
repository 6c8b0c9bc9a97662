"""Authenticated denial of existence: do these NSEC or NSEC3 records prove the answer?

Owns: deciding, from NSEC (RFC 4035 §5.4, RFC 4592 wildcards) or NSEC3 (RFC 5155 §8, RFC
9276 iteration limits) records whose signatures the caller has ALREADY validated, whether
they prove a name error (NXDOMAIN), a NODATA answer, that a wildcard-synthesized answer was
the right one (the name asked for does not exist), or that a delegation has no DS. The
answer is SECURE (proven), INSECURE (NSEC3 opt-out covers the name, or NSEC3 iterations are
above `MAX_NSEC3_ITERATIONS`: no AD bit, but not a failure) or BOGUS (not proven), with a
reason a person can read. NSEC3 hash computations are counted and capped by a `HashBudget`
shared across one client query (KeyTrap-class CPU exhaustion, CVE-2023-50387/50868).
Only records owned inside the signer zone are considered; any other RRset is ignored.
Must never: check signatures (the caller does, before), do I/O, read the clock or touch a
cache. Every function here is pure apart from decrementing the budget it is handed.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import dns.dnssec
import dns.name
import dns.rdataclass
import dns.rdatatype
from dns.name import Name
from dns.rrset import RRset

MAX_NSEC3_ITERATIONS = 150
"""RFC 9276 §3.2: above this, NSEC3 answers are treated as insecure (as Unbound and Knot do)."""

DEFAULT_HASH_BUDGET = 150
"""NSEC3 hashes one client query may spend. A proof costs about one hash per label of the
name below the zone plus one for the wildcard (hashes are cached within a proof), so this
fits a few proofs for deep names (CNAME chains, DS checks on the way down) while bounding
the work to 150 * (MAX_NSEC3_ITERATIONS + 1) SHA-1 computations."""

_SHA1_LENGTH = 20
_OPT_OUT = 0x01


class DenialStatus(enum.Enum):
    SECURE = "secure"
    """Proven."""
    INSECURE = "insecure"
    """NSEC3 opt-out covers the name (RFC 5155 §6, §8.6), or the NSEC3 iterations are above
    the limit (RFC 9276): the answer is insecure, not bogus."""
    BOGUS = "bogus"
    """Not proven."""


@dataclass(frozen=True)
class Denial:
    status: DenialStatus
    reason: str
    """Human text, e.g. "no NSEC covers www.example.com."."""
    hashes: int = 0
    """NSEC3 hash computations spent (for a per-query cap)."""


@dataclass
class HashBudget:
    """Caps NSEC3 hash computations across one client query (KeyTrap-class CPU exhaustion,
    CVE-2023-50387/50868). When it runs out mid-proof, the proof is BOGUS."""

    remaining: int = DEFAULT_HASH_BUDGET


def prove_nxdomain(
    qname: Name, zone: Name, rrsets: Sequence[RRset], budget: HashBudget | None = None
) -> Denial:
    """Do `rrsets` prove that `qname` does not exist and no wildcard could have made it?"""
    return _prove(
        qname,
        zone,
        rrsets,
        budget,
        lambda nsecs: _nsec_nxdomain(qname, zone, nsecs),
        lambda proof: _nsec3_nxdomain(qname, proof),
    )


def prove_nodata(
    qname: Name,
    qtype: int,
    zone: Name,
    rrsets: Sequence[RRset],
    budget: HashBudget | None = None,
) -> Denial:
    """Do `rrsets` prove that `qname` exists (or matches a wildcard) without type `qtype`?"""
    return _prove(
        qname,
        zone,
        rrsets,
        budget,
        lambda nsecs: _nsec_nodata(qname, qtype, zone, nsecs),
        lambda proof: _nsec3_nodata(qname, qtype, proof),
    )


def prove_wildcard_answer(
    qname: Name,
    wildcard: Name,
    zone: Name,
    rrsets: Sequence[RRset],
    budget: HashBudget | None = None,
) -> Denial:
    """For an answer synthesized from `wildcard` (`*.<closest encloser>`, derived by the
    caller from the RRSIG labels field): do `rrsets` prove that `qname` itself does not
    exist and that no name closer to it than the wildcard's parent does (RFC 4035 §5.3.4,
    RFC 5155 §8.8)?"""
    if not wildcard.is_wild() or not wildcard.is_subdomain(zone):
        return _bogus(f"{_t(wildcard)} is not a wildcard in {_t(zone)}")
    encloser = wildcard.parent()
    if qname == wildcard:
        return Denial(DenialStatus.SECURE, f"{_t(qname)} is the wildcard itself: not expanded")
    if qname == encloser or not qname.is_subdomain(encloser):
        return _bogus(f"{_t(qname)} is not below the wildcard's parent {_t(encloser)}")
    return _prove(
        qname,
        zone,
        rrsets,
        budget,
        lambda nsecs: _nsec_wildcard_answer(qname, encloser, zone, nsecs),
        lambda proof: _nsec3_wildcard_answer(qname, encloser, proof),
    )


def prove_no_ds(
    name: Name, zone: Name, rrsets: Sequence[RRset], budget: HashBudget | None = None
) -> Denial:
    """For a referral or a DS NODATA from the parent `zone`: do `rrsets` prove that the
    delegation `name` has no DS? SECURE: an NSEC/NSEC3 of the parent matches `name` with
    the NS bit, without DS and without SOA (the provably unsigned delegation). INSECURE: an
    NSEC3 opt-out span covers `name`. BOGUS otherwise."""
    return _prove(
        name,
        zone,
        rrsets,
        budget,
        lambda nsecs: _nsec_no_ds(name, zone, nsecs),
        lambda proof: _nsec3_no_ds(name, proof),
    )


# --- plumbing --------------------------------------------------------------------------


class _NotProven(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _HashLimit(Exception):
    pass


def _t(name: Name) -> str:
    return name.canonicalize().to_text()


def _type(rdtype: int) -> str:
    return dns.rdatatype.to_text(rdtype)


def _bogus(reason: str) -> Denial:
    return Denial(DenialStatus.BOGUS, reason)


def _secure(reason: str) -> Denial:
    return Denial(DenialStatus.SECURE, reason)


def _insecure(reason: str) -> Denial:
    return Denial(DenialStatus.INSECURE, reason)


def bitmap_types(windows: Iterable[tuple[int, bytes]]) -> frozenset[int]:
    """The types of an NSEC/NSEC3 type bitmap (RFC 4034 §4.1.2)."""
    types = set()
    for window, bitmap in windows:
        for index, octet in enumerate(bitmap):
            for bit in range(8):
                if octet & (0x80 >> bit):
                    types.add(window * 256 + index * 8 + bit)
    return frozenset(types)


def _wildcard_at(encloser: Name) -> Name:
    return Name((b"*", *encloser.labels))


def _common_ancestor(a: Name, b: Name) -> Name:
    _, _, common = a.fullcompare(b)
    return a.split(common)[1]


def _bitmap_refutes_nodata(types: frozenset[int], owner: Name, qtype: int, what: str) -> str | None:
    """Why a record matching `owner` does not prove NODATA for `qtype`, or None if it does."""
    if qtype in types:
        return f"{what} lists type {_type(qtype)}"
    if dns.rdatatype.CNAME in types:
        return f"{what} lists a CNAME: the answer should have followed it"
    if qtype == dns.rdatatype.DS and dns.rdatatype.SOA in types and owner != dns.name.root:
        return f"{what} is the child zone's apex, not the parent's: it cannot deny DS"
    if qtype != dns.rdatatype.DS and dns.rdatatype.NS in types and dns.rdatatype.SOA not in types:
        return f"{what} is a delegation point: the parent cannot deny {_type(qtype)}"
    return None


def _bitmap_refutes_no_ds(types: frozenset[int], owner: Name, what: str) -> str | None:
    """Why a record matching a delegation `owner` does not prove it has no DS."""
    if dns.rdatatype.SOA in types and owner != dns.name.root:
        return f"{what} is the child zone's apex (SOA bit), not the parent's delegation"
    if dns.rdatatype.DS in types:
        return f"{what} lists type DS"
    if dns.rdatatype.NS not in types:
        return f"{what} has no NS bit: {_t(owner)} is not a delegation"
    return None


def _prove(
    name: Name,
    zone: Name,
    rrsets: Sequence[RRset],
    budget: HashBudget | None,
    with_nsec: Callable[[list[_Nsec]], Denial],
    with_nsec3: Callable[[_Nsec3Proof], Denial],
) -> Denial:
    """Run the NSEC proof if the reply has NSEC records of `zone`, else (or when it fails
    and NSEC3 records are present too) the NSEC3 proof."""
    if not name.is_subdomain(zone):
        return _bogus(f"{_t(name)} is not in zone {_t(zone)}")
    nsecs = _read_nsecs(zone, rrsets)
    nsec3s = _read_nsec3s(zone, rrsets)
    if nsecs:
        try:
            result = with_nsec(nsecs)
        except _NotProven as failure:
            result = _bogus(failure.reason)
        if result.status is DenialStatus.SECURE or not nsec3s:
            return result
    if not nsec3s:
        return _bogus(f"no NSEC or usable NSEC3 records of zone {_t(zone)}")
    params = {record.params for record in nsec3s}
    if len(params) > 1:
        return _bogus(f"NSEC3 records of {_t(zone)} with mixed parameters (salt, iterations)")
    (algorithm, iterations, salt) = params.pop()
    if iterations > MAX_NSEC3_ITERATIONS:
        return _insecure(
            f"NSEC3 iterations {iterations} above the limit {MAX_NSEC3_ITERATIONS} (RFC 9276)"
        )
    hasher = _Hasher(algorithm, iterations, salt, budget if budget is not None else HashBudget())
    proof = _Nsec3Proof(zone, nsec3s, hasher)
    try:
        result = with_nsec3(proof)
    except _NotProven as failure:
        result = _bogus(failure.reason)
    except _HashLimit:
        result = _bogus(f"NSEC3 hash limit reached after {hasher.spent} hashes this proof")
    return dataclasses.replace(result, hashes=hasher.spent)


# --- NSEC (RFC 4035 §5.4) ---------------------------------------------------------------


@dataclass(frozen=True)
class _Nsec:
    owner: Name
    next: Name
    types: frozenset[int]

    @property
    def is_cut(self) -> bool:
        """Names below the owner belong to another zone (delegation) or are redirected."""
        if dns.rdatatype.DNAME in self.types:
            return True
        return dns.rdatatype.NS in self.types and dns.rdatatype.SOA not in self.types

    def covers(self, name: Name, zone: Name) -> bool:
        """Does this NSEC prove `name` does not exist: owner < name < next in canonical
        order (the last NSEC's next is the apex), and `name` is neither below a cut at the
        owner nor an empty non-terminal above the next name?"""
        if name == self.owner or not name.is_subdomain(zone):
            return False
        if name.is_subdomain(self.owner) and self.is_cut:
            return False
        if self.next.is_subdomain(name):
            return False
        if self.owner < self.next:
            return self.owner < name < self.next
        if self.next == zone:
            return self.owner < name
        return False

    def closest_encloser(self, name: Name, zone: Name) -> Name:
        """The closest encloser of `name` this covering NSEC shows: its longest ancestor
        that is also an ancestor of the owner or the next name (RFC 4592 §3.3.1)."""
        by_owner = _common_ancestor(name, self.owner)
        by_next = _common_ancestor(name, self.next) if self.next.is_subdomain(zone) else zone
        return max(by_owner, by_next, key=lambda ancestor: len(ancestor.labels))


def _read_nsecs(zone: Name, rrsets: Sequence[RRset]) -> list[_Nsec]:
    nsecs = []
    for rrset in rrsets:
        if rrset.rdtype != dns.rdatatype.NSEC or rrset.rdclass != dns.rdataclass.IN:
            continue
        if not rrset.name.is_subdomain(zone):
            continue
        for rdata in rrset:
            nsecs.append(_Nsec(rrset.name, rdata.next, bitmap_types(rdata.windows)))
    return nsecs


def _nsec_refuse_cut(name: Name, nsecs: list[_Nsec]) -> None:
    """`name` is below a delegation or DNAME if an NSEC at a strict ancestor says so."""
    for nsec in nsecs:
        if nsec.owner != name and name.is_subdomain(nsec.owner) and nsec.is_cut:
            raise _NotProven(f"{_t(name)} is below the delegation or DNAME at {_t(nsec.owner)}")


def _nsec_covering(name: Name, zone: Name, nsecs: list[_Nsec]) -> list[_Nsec]:
    covering = [nsec for nsec in nsecs if nsec.covers(name, zone)]
    if not covering:
        raise _NotProven(f"no NSEC covers {_t(name)}")
    return covering


def _nsec_nxdomain(qname: Name, zone: Name, nsecs: list[_Nsec]) -> Denial:
    _nsec_refuse_cut(qname, nsecs)
    if any(nsec.owner == qname for nsec in nsecs):
        return _bogus(f"an NSEC at {_t(qname)} shows it exists")
    reason = ""
    for cover in _nsec_covering(qname, zone, nsecs):
        encloser = cover.closest_encloser(qname, zone)
        wildcard = _wildcard_at(encloser)
        if any(nsec.covers(wildcard, zone) for nsec in nsecs):
            return _secure(f"NSEC proves {_t(qname)} does not exist and no wildcard {_t(wildcard)}")
        reason = f"no NSEC covers the wildcard {_t(wildcard)}"
    return _bogus(reason)


def _nsec_nodata(qname: Name, qtype: int, zone: Name, nsecs: list[_Nsec]) -> Denial:
    _nsec_refuse_cut(qname, nsecs)
    for nsec in nsecs:
        if nsec.owner == qname:
            refuted = _bitmap_refutes_nodata(nsec.types, qname, qtype, f"the NSEC at {_t(qname)}")
            if refuted:
                return _bogus(refuted)
            return _secure(f"the NSEC at {_t(qname)} does not list {_type(qtype)}")
    for nsec in nsecs:
        if nsec.owner < qname and nsec.next != qname and nsec.next.is_subdomain(qname):
            return _secure(f"NSEC proves {_t(qname)} is an empty non-terminal")
    reason = ""
    for cover in _nsec_covering(qname, zone, nsecs):
        wildcard = _wildcard_at(cover.closest_encloser(qname, zone))
        match = next((nsec for nsec in nsecs if nsec.owner == wildcard), None)
        if match is None:
            reason = f"no NSEC matches {_t(qname)} or the wildcard {_t(wildcard)}"
            continue
        refuted = _bitmap_refutes_nodata(
            match.types, wildcard, qtype, f"the NSEC at the wildcard {_t(wildcard)}"
        )
        if refuted:
            reason = refuted
            continue
        return _secure(f"NSEC proves wildcard NODATA for {_t(qname)} at {_t(wildcard)}")
    return _bogus(reason)


def _nsec_wildcard_answer(qname: Name, encloser: Name, zone: Name, nsecs: list[_Nsec]) -> Denial:
    _nsec_refuse_cut(qname, nsecs)
    reason = ""
    for cover in _nsec_covering(qname, zone, nsecs):
        shown = cover.closest_encloser(qname, zone)
        if shown == encloser:
            return _secure(
                f"NSEC proves {_t(qname)} does not exist below closest encloser {_t(encloser)}"
            )
        reason = (
            f"the NSEC covering {_t(qname)} shows closest encloser {_t(shown)}, "
            f"not the wildcard's {_t(encloser)}"
        )
    return _bogus(reason)


def _nsec_no_ds(name: Name, zone: Name, nsecs: list[_Nsec]) -> Denial:
    _nsec_refuse_cut(name, nsecs)
    for nsec in nsecs:
        if nsec.owner == name:
            refuted = _bitmap_refutes_no_ds(nsec.types, name, f"the NSEC at {_t(name)}")
            if refuted:
                return _bogus(refuted)
            return _secure(f"NSEC proves {_t(name)} is a delegation without DS")
    return _bogus(f"no NSEC matches the delegation {_t(name)}")


# --- NSEC3 (RFC 5155 §8) ----------------------------------------------------------------


@dataclass(frozen=True)
class _Nsec3:
    owner: Name
    hash: bytes
    next: bytes
    optout: bool
    types: frozenset[int]
    params: tuple[int, int, bytes]
    """(hash algorithm, iterations, salt)"""

    def covers(self, digest: bytes) -> bool:
        if self.hash < self.next:
            return self.hash < digest < self.next
        # The last record of the chain: its next wraps to the first hash.
        return digest > self.hash or digest < self.next


def _b32hex(label: bytes) -> bytes | None:
    text = label.upper()
    text += b"=" * (-len(text) % 8)
    try:
        return base64.b32hexdecode(text)
    except (binascii.Error, ValueError):
        return None


def _read_nsec3s(zone: Name, rrsets: Sequence[RRset]) -> list[_Nsec3]:
    """The usable NSEC3 records of `zone`: owner `<base32hex hash>.<zone>`, a known hash
    algorithm (RFC 5155 §8.1) and flags 0 or 1 (§8.2); others are ignored."""
    records = []
    for rrset in rrsets:
        if rrset.rdtype != dns.rdatatype.NSEC3 or rrset.rdclass != dns.rdataclass.IN:
            continue
        if len(rrset.name) < 2 or rrset.name.parent() != zone:
            continue
        owner_hash = _b32hex(rrset.name.labels[0])
        if owner_hash is None:
            continue
        for rdata in rrset:
            if rdata.algorithm != dns.dnssec.NSEC3Hash.SHA1 or rdata.flags & ~_OPT_OUT:
                continue
            if len(owner_hash) != _SHA1_LENGTH or len(rdata.next) != _SHA1_LENGTH:
                continue
            records.append(
                _Nsec3(
                    owner=rrset.name,
                    hash=owner_hash,
                    next=rdata.next,
                    optout=bool(rdata.flags & _OPT_OUT),
                    types=bitmap_types(rdata.windows),
                    params=(rdata.algorithm, rdata.iterations, rdata.salt),
                )
            )
    return records


class _Hasher:
    """NSEC3 hashes of names, each computed at most once, charged to a budget."""

    def __init__(self, algorithm: int, iterations: int, salt: bytes, budget: HashBudget) -> None:
        self.algorithm = algorithm
        self.iterations = iterations
        self.salt = salt
        self.budget = budget
        self.spent = 0
        self._cache: dict[Name, bytes] = {}

    def __call__(self, name: Name) -> bytes:
        key = name.canonicalize()
        digest = self._cache.get(key)
        if digest is None:
            if self.budget.remaining <= 0:
                raise _HashLimit
            self.budget.remaining -= 1
            self.spent += 1
            text = dns.dnssec.nsec3_hash(key, self.salt, self.iterations, self.algorithm)
            digest = base64.b32hexdecode(text)
            self._cache[key] = digest
        return digest


@dataclass(frozen=True)
class _Encloser:
    """A proven closest encloser (RFC 5155 §8.3)."""

    name: Name
    next_closer: Name
    next_closer_cover: _Nsec3


class _Nsec3Proof:
    def __init__(self, zone: Name, records: list[_Nsec3], hasher: _Hasher) -> None:
        self.zone = zone
        self.records = records
        self.hash = hasher
        self._by_hash = {record.hash: record for record in records}

    def matching(self, name: Name) -> _Nsec3 | None:
        return self._by_hash.get(self.hash(name))

    def covering(self, name: Name) -> _Nsec3 | None:
        digest = self.hash(name)
        return next((record for record in self.records if record.covers(digest)), None)

    def closest_encloser(self, qname: Name) -> _Encloser:
        """The closest encloser proof for a `qname` that has no matching NSEC3: its longest
        ancestor with a matching NSEC3 that is not a delegation or DNAME, and an NSEC3
        covering the next closer name (RFC 5155 §8.3)."""
        name = qname
        next_closer = None
        while (match := self.matching(name)) is None:
            if name == self.zone:
                raise _NotProven(f"no NSEC3 matches any ancestor of {_t(qname)}")
            next_closer = name
            name = name.parent()
        if next_closer is None:
            raise _NotProven(f"an NSEC3 matches {_t(qname)}: it exists")
        if dns.rdatatype.DNAME in match.types:
            raise _NotProven(f"the closest encloser {_t(name)} of {_t(qname)} is a DNAME")
        if dns.rdatatype.NS in match.types and dns.rdatatype.SOA not in match.types:
            raise _NotProven(
                f"the closest encloser {_t(name)} of {_t(qname)} is a delegation point"
            )
        cover = self.covering(next_closer)
        if cover is None:
            raise _NotProven(f"no NSEC3 covers the next closer name {_t(next_closer)}")
        return _Encloser(name, next_closer, cover)


def _optout(encloser: _Encloser, proves: str) -> Denial:
    return _insecure(
        f"NSEC3 opt-out covers the next closer name {_t(encloser.next_closer)} ({proves})"
    )


def _nsec3_nxdomain(qname: Name, proof: _Nsec3Proof) -> Denial:
    encloser = proof.closest_encloser(qname)
    wildcard = _wildcard_at(encloser.name)
    if proof.covering(wildcard) is None:
        if proof.matching(wildcard) is not None:
            return _bogus(f"an NSEC3 matches the wildcard {_t(wildcard)}: it exists")
        return _bogus(f"no NSEC3 covers the wildcard {_t(wildcard)}")
    if encloser.next_closer_cover.optout:
        return _optout(encloser, f"{_t(qname)} may be below an unsigned delegation")
    return _secure(f"NSEC3 proves {_t(qname)} does not exist and no wildcard {_t(wildcard)}")


def _nsec3_nodata(qname: Name, qtype: int, proof: _Nsec3Proof) -> Denial:
    match = proof.matching(qname)
    if match is not None:
        what = f"the NSEC3 matching {_t(qname)}"
        refuted = _bitmap_refutes_nodata(match.types, qname, qtype, what)
        if refuted:
            return _bogus(refuted)
        if not match.types:
            return _secure(f"NSEC3 proves {_t(qname)} is an empty non-terminal")
        return _secure(f"{what} does not list {_type(qtype)}")
    encloser = proof.closest_encloser(qname)
    wildcard = _wildcard_at(encloser.name)
    wild_match = proof.matching(wildcard)
    if wild_match is not None:
        what = f"the NSEC3 matching the wildcard {_t(wildcard)}"
        refuted = _bitmap_refutes_nodata(wild_match.types, wildcard, qtype, what)
        if refuted:
            return _bogus(refuted)
        if encloser.next_closer_cover.optout:
            return _optout(encloser, "wildcard NODATA in an opt-out span")
        return _secure(f"NSEC3 proves wildcard NODATA for {_t(qname)} at {_t(wildcard)}")
    if encloser.next_closer_cover.optout:
        return _optout(encloser, f"{_t(qname)} may be an unsigned delegation")
    return _bogus(
        f"no NSEC3 matches {_t(qname)} or the wildcard {_t(wildcard)}, and the next closer "
        "name is not in an opt-out span"
    )


def _nsec3_wildcard_answer(qname: Name, encloser: Name, proof: _Nsec3Proof) -> Denial:
    next_closer = qname.split(len(encloser.labels) + 1)[1]
    if proof.matching(next_closer) is not None:
        return _bogus(f"an NSEC3 matches the next closer name {_t(next_closer)}: it exists")
    cover = proof.covering(next_closer)
    if cover is None:
        return _bogus(f"no NSEC3 covers the next closer name {_t(next_closer)}")
    if cover.optout:
        return _insecure(f"NSEC3 opt-out covers the next closer name {_t(next_closer)}")
    return _secure(f"NSEC3 proves the next closer name {_t(next_closer)} does not exist")


def _nsec3_no_ds(name: Name, proof: _Nsec3Proof) -> Denial:
    match = proof.matching(name)
    if match is not None:
        refuted = _bitmap_refutes_no_ds(match.types, name, f"the NSEC3 matching {_t(name)}")
        if refuted:
            return _bogus(refuted)
        return _secure(f"NSEC3 proves {_t(name)} is a delegation without DS")
    encloser = proof.closest_encloser(name)
    if not encloser.next_closer_cover.optout:
        return _bogus(
            f"no NSEC3 matches {_t(name)} and the NSEC3 covering the next closer name "
            f"{_t(encloser.next_closer)} is not opt-out"
        )
    return _optout(encloser, f"{_t(name)} may be an unsigned delegation")

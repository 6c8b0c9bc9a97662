"""Aggressive use of the DNSSEC-validated cache (RFC 8198): answering from kept denials.

Owns: keeping the NSEC and NSEC3 records (with their RRSIGs and the zone's SOA) of secure
denials, and synthesizing NXDOMAIN or NODATA for a later question whose non-existence they
already prove, without asking upstream. This defeats random-subdomain ("water torture")
floods against signed zones: one upstream NXDOMAIN covers every name in the same gap. Each
record is kept for min(its TTL, its RRSIG's TTL, SOA TTL, SOA MINIMUM) (RFC 8198 §5.4, RFC
9077); the store is bounded (oldest added first out). A lookup finds the deepest cached
zone holding the name, picks the few records that could prove the answer by bisecting the
canonically ordered NSEC owners or the sorted NSEC3 hashes (O(log n), never a scan over
all records), and hands them to `denial.prove_nxdomain` / `denial.prove_nodata`; only a
SECURE proof answers. NSEC3 opt-out spans (INSECURE), iterations above the RFC 9276 limit,
names at or below a delegation or DNAME the records show (except DS at the delegation)
and meta-type NODATA are never answered. NSEC3 hashes are charged to the caller's
`HashBudget`.
Must never: validate signatures (only records the caller has ALREADY validated go in; the
RRSIGs are kept only to hand them to DO clients), do I/O, or read the clock (time comes in
as `now`, seconds, the same clock on every call).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import heapq
import itertools
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import dns.dnssec
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.name import Name
from dns.rrset import RRset

from poisonproof.resolver.denial import (
    MAX_NSEC3_ITERATIONS,
    DenialStatus,
    HashBudget,
    prove_nodata,
    prove_nxdomain,
)

_NSEC = dns.rdatatype.NSEC
_NSEC3 = dns.rdatatype.NSEC3
_SHA1_LENGTH = 20
_OPT_OUT = 0x01


@dataclass(frozen=True)
class Synthesized:
    """A negative answer made from cached, previously validated denial records."""

    nxdomain: bool
    """True: NXDOMAIN; False: NODATA."""
    zone: Name
    soa: RRset
    """The zone's SOA, its TTL the remaining negative TTL."""
    records: tuple[RRset, ...]
    """The NSEC/NSEC3 RRsets used, each followed by its RRSIG RRset, then the SOA's RRSIG
    RRset (if one was given): all with TTL `ttl`."""
    ttl: int


_Key = tuple[Name, int, Name | bytes]
"""(zone, NSEC or NSEC3, owner name or owner hash)."""


@dataclass
class _Entry:
    key: _Key
    rrset: RRset
    sigs: RRset
    expires: float
    seq: int
    next: Name | bytes
    types: frozenset[int]

    @property
    def is_delegation(self) -> bool:
        return dns.rdatatype.NS in self.types and dns.rdatatype.SOA not in self.types

    @property
    def is_cut(self) -> bool:
        """Names strictly below the owner are in another zone or redirected."""
        return self.is_delegation or dns.rdatatype.DNAME in self.types


@dataclass
class _Zone:
    soa: RRset
    soa_sigs: RRset | None
    soa_expires: float
    nsec_owners: list[Name] = field(default_factory=list)
    """Canonical (lower-case) NSEC owners in canonical DNSSEC order."""
    nsecs: dict[Name, _Entry] = field(default_factory=dict)
    nsec3_params: tuple[int, int, bytes] | None = None
    """(hash algorithm, iterations, salt) of the cached NSEC3 records."""
    nsec3_hashes: list[bytes] = field(default_factory=list)
    nsec3s: dict[bytes, _Entry] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.nsecs) + len(self.nsec3s)


class _OutOfHashes(Exception):
    pass


class DenialCache:
    """Validated NSEC/NSEC3 records per zone, and the negative answers they prove."""

    def __init__(self, max_records: int = 100_000) -> None:
        if max_records < 1:
            raise ValueError("max_records must be at least 1")
        self.max_records = max_records
        self._zones: dict[Name, _Zone] = {}
        self._order: OrderedDict[_Key, _Entry] = OrderedDict()
        """Every cached record, oldest added first."""
        self._expiry: list[tuple[float, int, _Key]] = []
        """Heap of (expires, seq, key); entries whose seq no longer matches are stale."""
        self._seq = itertools.count()

    def __len__(self) -> int:
        """The number of cached NSEC/NSEC3 RRsets (expired ones may linger until the next
        `add` or `lookup`)."""
        return len(self._order)

    # --- storing ---------------------------------------------------------------------

    def add(
        self,
        zone: Name,
        records: Sequence[RRset],
        soa: RRset,
        soa_sigs: RRset | None,
        now: float,
    ) -> None:
        """Keep the NSEC/NSEC3 RRsets of `zone` found in `records` (already validated, mixed
        with their RRSIG RRsets). An NSEC/NSEC3 is kept only with an RRSIG of it signed by
        `zone`; RRsets owned outside `zone`, NSEC3 with an unknown algorithm or flags, or
        with iterations above the RFC 9276 limit, are ignored. NSEC3 records with other
        parameters than the cached ones of the zone replace them all (the zone re-salted)."""
        if soa.rdtype != dns.rdatatype.SOA or soa.name != zone or len(soa) == 0:
            raise ValueError(
                f"{soa.name} {dns.rdatatype.to_text(soa.rdtype)} is not the SOA of {zone}"
            )
        self._purge(now)
        zone = zone.canonicalize()
        negative_ttl = min(soa.ttl, min(rdata.minimum for rdata in soa))
        soa_expires = now + min(
            negative_ttl, soa_sigs.ttl if soa_sigs is not None else negative_ttl
        )
        sigs = _signatures(zone, records)
        state = self._zones.get(zone)
        for rrset in records:
            if rrset.rdclass != dns.rdataclass.IN or rrset.rdtype not in (_NSEC, _NSEC3):
                continue
            rrsig = sigs.get((rrset.name.canonicalize(), rrset.rdtype))
            if rrsig is None or len(rrset) != 1:
                continue
            ttl = min(rrset.ttl, rrsig.ttl, negative_ttl)
            if ttl <= 0:
                continue
            if state is None:
                state = _Zone(soa, soa_sigs, soa_expires)
                self._zones[zone] = state
            if rrset.rdtype == _NSEC:
                self._add_nsec(zone, state, rrset, rrsig, now + ttl)
            else:
                self._add_nsec3(zone, state, rrset, rrsig, now + ttl)
        if state is not None:
            state.soa, state.soa_sigs, state.soa_expires = soa, soa_sigs, soa_expires
            if state:
                self._zones[zone] = state  # again: re-salting may have emptied and dropped it
            else:
                self._zones.pop(zone, None)
        while len(self._order) > self.max_records:
            _, oldest = self._order.popitem(last=False)
            self._drop(oldest, from_order=False)

    def _add_nsec(
        self, zone: Name, state: _Zone, rrset: RRset, sigs: RRset, expires: float
    ) -> None:
        owner = rrset.name.canonicalize()
        if not owner.is_subdomain(zone):
            return
        rdata = rrset[0]
        following = rdata.next.canonicalize()
        entry = self._entry((zone, _NSEC, owner), rrset, sigs, expires, following, rdata.windows)
        if owner not in state.nsecs:
            bisect.insort(state.nsec_owners, owner)
        state.nsecs[owner] = entry

    def _add_nsec3(
        self, zone: Name, state: _Zone, rrset: RRset, sigs: RRset, expires: float
    ) -> None:
        owner = rrset.name.canonicalize()
        if len(owner) < 2 or owner.parent() != zone:
            return
        owner_hash = _b32hex(owner.labels[0])
        rdata = rrset[0]
        if owner_hash is None or len(owner_hash) != _SHA1_LENGTH:
            return
        if rdata.algorithm != dns.dnssec.NSEC3Hash.SHA1 or rdata.flags & ~_OPT_OUT:
            return
        if rdata.iterations > MAX_NSEC3_ITERATIONS or len(rdata.next) != _SHA1_LENGTH:
            return
        params = (rdata.algorithm, rdata.iterations, bytes(rdata.salt))
        if state.nsec3_params != params:
            for old in list(state.nsec3s.values()):
                self._drop(old)
            state.nsec3_params = params
        key = (zone, _NSEC3, owner_hash)
        entry = self._entry(key, rrset, sigs, expires, rdata.next, rdata.windows)
        if owner_hash not in state.nsec3s:
            bisect.insort(state.nsec3_hashes, owner_hash)
        state.nsec3s[owner_hash] = entry

    def _entry(
        self,
        key: _Key,
        rrset: RRset,
        sigs: RRset,
        expires: float,
        following: Name | bytes,
        windows: Iterable[tuple[int, bytes]],
    ) -> _Entry:
        seq = next(self._seq)
        entry = _Entry(key, rrset, sigs, expires, seq, following, _types(windows))
        self._order[key] = entry
        self._order.move_to_end(key)
        heapq.heappush(self._expiry, (expires, seq, key))
        if len(self._expiry) > 2 * len(self._order) + 64:
            self._expiry = [(e.expires, e.seq, e.key) for e in self._order.values()]
            heapq.heapify(self._expiry)
        return entry

    # --- forgetting --------------------------------------------------------------------

    def forget_zone(self, zone: Name) -> None:
        """Drop every record kept for `zone` (not for zones below it)."""
        state = self._zones.pop(zone.canonicalize(), None)
        if state is None:
            return
        for entry in itertools.chain(state.nsecs.values(), state.nsec3s.values()):
            self._order.pop(entry.key, None)

    def _drop(self, entry: _Entry, from_order: bool = True) -> None:
        zone, rdtype, owner = entry.key
        if from_order:
            self._order.pop(entry.key, None)
        state = self._zones.get(zone)
        if state is None:
            return
        if rdtype == _NSEC:
            assert isinstance(owner, Name)
            _remove_sorted(state.nsec_owners, state.nsecs, owner)
        else:
            assert isinstance(owner, bytes)
            _remove_sorted(state.nsec3_hashes, state.nsec3s, owner)
        if not state:
            del self._zones[zone]

    def _purge(self, now: float) -> None:
        """Drop every record expired at `now` (amortized O(log n) each)."""
        while self._expiry and self._expiry[0][0] <= now:
            _, seq, key = heapq.heappop(self._expiry)
            entry = self._order.get(key)
            if entry is not None and entry.seq == seq:
                self._drop(entry)

    # --- answering ---------------------------------------------------------------------

    def lookup(self, name: Name, qtype: int, now: float, budget: HashBudget) -> Synthesized | None:
        """A negative answer for (`name`, `qtype`) proven by cached records of the deepest
        cached zone holding `name` (for DS: holding its parent side), or None."""
        self._purge(now)
        name = name.canonicalize()
        found = self._zone_of(name, qtype)
        if found is None:
            return None
        zone, state = found
        if state.soa_expires <= now:
            return None
        answer = None
        if state.nsecs:
            answer = self._by_nsec(zone, state, name, qtype)
        if answer is None and state.nsec3s:
            try:
                answer = self._by_nsec3(zone, state, name, qtype, budget)
            except _OutOfHashes:
                return None
        if answer is None:
            return None
        nxdomain, used = answer
        expires = min(state.soa_expires, *(entry.expires for entry in used))
        ttl = int(expires - now)
        if ttl <= 0:
            return None
        out: list[RRset] = []
        for entry in used:
            out += [_with_ttl(entry.rrset, ttl), _with_ttl(entry.sigs, ttl)]
        if state.soa_sigs is not None:
            out.append(_with_ttl(state.soa_sigs, ttl))
        return Synthesized(nxdomain, zone, _with_ttl(state.soa, ttl), tuple(out), ttl)

    def _zone_of(self, name: Name, qtype: int) -> tuple[Name, _Zone] | None:
        """The deepest cached zone at or above `name`; for DS, strictly above it (the
        parent side of a delegation holds its DS)."""
        if qtype == dns.rdatatype.DS and name != dns.name.root:
            name = name.parent()
        while True:
            state = self._zones.get(name)
            if state is not None:
                return name, state
            if name == dns.name.root:
                return None
            name = name.parent()

    def _by_nsec(
        self, zone: Name, state: _Zone, name: Name, qtype: int
    ) -> tuple[bool, list[_Entry]] | None:
        # Below a delegation or DNAME the records show: another zone's business.
        ancestor = name
        while ancestor != zone:
            ancestor = ancestor.parent()
            cut = state.nsecs.get(ancestor)
            if cut is not None and cut.is_cut:
                return None
        before = _at_or_before(state.nsec_owners, state.nsecs, name)
        if before is None:
            return None
        if before.key[2] == name:
            return _nodata(zone, name, qtype, [before])
        following = before.next
        assert isinstance(following, Name)
        if following != name and following.is_subdomain(name):
            return _nodata(zone, name, qtype, [before])  # an empty non-terminal
        wildcard = _wildcard_at(_nsec_closest_encloser(name, before.key[2], following, zone))
        used = [before]
        at_wildcard = _at_or_before(state.nsec_owners, state.nsecs, wildcard)
        if at_wildcard is not None and at_wildcard is not before:
            used.append(at_wildcard)
        rrsets = _rrsets(used)
        if prove_nxdomain(name, zone, rrsets).status is DenialStatus.SECURE:
            return True, used
        return _nodata(zone, name, qtype, used)

    def _by_nsec3(
        self, zone: Name, state: _Zone, name: Name, qtype: int, budget: HashBudget
    ) -> tuple[bool, list[_Entry]] | None:
        assert state.nsec3_params is not None
        algorithm, iterations, salt = state.nsec3_params

        def digest(of: Name) -> bytes:
            if budget.remaining <= 0:
                raise _OutOfHashes
            budget.remaining -= 1
            return base64.b32hexdecode(dns.dnssec.nsec3_hash(of, salt, iterations, algorithm))

        # Walk down from the apex: each ancestor matched (and not a cut) until the first
        # one with no NSEC3, which must be covered: that is the next closer name.
        matched = state.nsec3s.get(digest(zone))
        if matched is None:
            return None
        encloser = zone
        below = name.relativize(zone).labels if name != zone else ()
        next_closer = cover = None
        for depth in range(len(below) - 1, -1, -1):
            if matched.is_cut:
                return None
            child = Name(below[depth:] + zone.labels)
            child_digest = digest(child)
            match = state.nsec3s.get(child_digest)
            if match is not None:
                matched, encloser = match, child
                continue
            cover = _nsec3_covering(state, child_digest)
            if cover is None:
                return None
            next_closer = child
            break
        if next_closer is None or cover is None:
            return _nodata(zone, name, qtype, [matched])
        wildcard_digest = digest(_wildcard_at(encloser))
        at_wildcard = state.nsec3s.get(wildcard_digest) or _nsec3_covering(state, wildcard_digest)
        if at_wildcard is None:
            return None
        used = _unique([matched, cover, at_wildcard])
        rrsets = _rrsets(used)
        # The proof for the next closer name is the proof for every name below it (same
        # closest encloser, same wildcard) and costs three hashes, not one per label.
        if prove_nxdomain(next_closer, zone, rrsets, budget).status is DenialStatus.SECURE:
            return True, used
        return _nodata(zone, next_closer, qtype, used, budget)


# --- helpers -------------------------------------------------------------------------


def _nodata(
    zone: Name,
    name: Name,
    qtype: int,
    used: list[_Entry],
    budget: HashBudget | None = None,
) -> tuple[bool, list[_Entry]] | None:
    if dns.rdatatype.is_metatype(qtype):
        return None
    if prove_nodata(name, qtype, zone, _rrsets(used), budget).status is DenialStatus.SECURE:
        return False, used
    return None


def _signatures(zone: Name, records: Iterable[RRset]) -> dict[tuple[Name, int], RRset]:
    """The RRSIG RRsets in `records` by (owner, type covered), keeping only signatures
    made by `zone`."""
    out: dict[tuple[Name, int], RRset] = {}
    for rrset in records:
        if rrset.rdtype != dns.rdatatype.RRSIG or rrset.covers not in (_NSEC, _NSEC3):
            continue
        rdatas = [rdata for rdata in rrset if rdata.signer == zone]
        if rdatas:
            out[(rrset.name.canonicalize(), rrset.covers)] = dns.rrset.from_rdata_list(
                rrset.name, rrset.ttl, rdatas
            )
    return out


def _at_or_before(owners: list[Name], entries: dict[Name, _Entry], name: Name) -> _Entry | None:
    """The NSEC with the greatest owner <= `name` in canonical order."""
    index = bisect.bisect_right(owners, name)
    return entries[owners[index - 1]] if index else None


def _nsec3_covering(state: _Zone, digest: bytes) -> _Entry | None:
    """The NSEC3 whose span strictly holds `digest` (the greatest owner hash below it, or
    the last one of the chain, whose next hash wraps around), if it does."""
    hashes = state.nsec3_hashes
    if not hashes:
        return None
    index = bisect.bisect_left(hashes, digest)
    entry = state.nsec3s[hashes[index - 1]]  # index 0: the greatest, which may wrap
    owner, following = entry.key[2], entry.next
    assert isinstance(owner, bytes) and isinstance(following, bytes)
    if owner < following:
        return entry if owner < digest < following else None
    return entry if digest > owner or digest < following else None


def _remove_sorted(keys: list, entries: dict, key: Name | bytes) -> None:
    if entries.pop(key, None) is None:
        return
    index = bisect.bisect_left(keys, key)
    if index < len(keys) and keys[index] == key:
        del keys[index]


def _nsec_closest_encloser(name: Name, owner: Name, following: Name, zone: Name) -> Name:
    """The closest encloser of `name` that an NSEC owner -> following covering it shows
    (RFC 4592 §3.3.1): its longest ancestor shared with the owner or the next name."""
    by_owner = _common_ancestor(name, owner)
    by_next = _common_ancestor(name, following) if following.is_subdomain(zone) else zone
    return max(by_owner, by_next, key=lambda ancestor: len(ancestor.labels))


def _common_ancestor(a: Name, b: Name) -> Name:
    _, _, common = a.fullcompare(b)
    return a.split(common)[1]


def _wildcard_at(encloser: Name) -> Name:
    return Name((b"*", *encloser.labels))


def _unique(entries: list[_Entry]) -> list[_Entry]:
    out: list[_Entry] = []
    for entry in entries:
        if all(entry is not seen for seen in out):
            out.append(entry)
    return out


def _rrsets(entries: list[_Entry]) -> list[RRset]:
    return [entry.rrset for entry in entries]


def _with_ttl(rrset: RRset, ttl: int) -> RRset:
    copy = rrset.copy()
    copy.ttl = ttl
    return copy


def _types(windows: Iterable[tuple[int, bytes]]) -> frozenset[int]:
    """The types of an NSEC/NSEC3 type bitmap (RFC 4034 §4.1.2)."""
    types = set()
    for window, bitmap in windows:
        for index, octet in enumerate(bitmap):
            for bit in range(8):
                if octet & (0x80 >> bit):
                    types.add(window * 256 + index * 8 + bit)
    return frozenset(types)


def _b32hex(label: bytes) -> bytes | None:
    text = label.upper()
    text += b"=" * (-len(text) % 8)
    try:
        return base64.b32hexdecode(text)
    except (binascii.Error, ValueError):
        return None

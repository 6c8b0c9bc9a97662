"""Aggressive use of the DNSSEC-validated cache (RFC 8198): answering from kept denials.

Owns: keeping the NSEC and NSEC3 records (with their RRSIGs and the zone's SOA) of secure
denials, and synthesizing NXDOMAIN or NODATA for a later question whose non-existence they
already prove, without asking upstream; and the RRsets of validated wildcard expansions,
so that a later name the kept NSEC/NSEC3 records show to be absent below the same
closest encloser is answered from its wildcard (RFC 8198 §5.3). This defeats
random-subdomain ("water torture")
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
from collections.abc import Callable, Iterable, Sequence
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
    bitmap_types,
    prove_nodata,
    prove_nxdomain,
)

_NSEC = dns.rdatatype.NSEC
_NSEC3 = dns.rdatatype.NSEC3
_SHA1_LENGTH = 20
_NOT_FROM_WILDCARDS = frozenset(
    {dns.rdatatype.DS, dns.rdatatype.RRSIG, dns.rdatatype.NSEC, dns.rdatatype.NSEC3}
)
"""Types never answered from a kept wildcard (a DS lives at a delegation's parent side;
the DNSSEC records at a name are its own)."""
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


@dataclass(frozen=True)
class WildcardAnswer:
    """A positive answer made from a cached, validated wildcard RRset (RFC 8198 §5.3)."""

    zone: Name
    rrset: RRset
    """The wildcard's RRset with the question name as owner, TTL `ttl`."""
    sigs: RRset
    """Its RRSIG RRset (the wildcard's signatures, the question name as owner)."""
    records: tuple[RRset, ...]
    """The NSEC (or the NSEC3 covering the next closer name) showing that the question
    name does not exist, and its RRSIG."""
    ttl: int


@dataclass
class _Wildcard:
    rrset: RRset
    sigs: RRset
    expires: float


_Labels = tuple[bytes, ...]
"""A name's sort key: its lower-cased labels from the root down. Python orders these
tuples exactly as RFC 4034 §6.1 (and dnspython's `Name` comparison) orders names, but in
C: ancestors are prefixes, and a bisect costs no `Name.fullcompare` calls."""

_Key = tuple[_Labels, int, _Labels | bytes]
"""(zone, NSEC or NSEC3, owner name or owner hash)."""


def _labels(name: Name) -> _Labels:
    return tuple(label.lower() for label in reversed(name.labels))


@dataclass
class _Entry:
    key: _Key
    rrset: RRset
    sigs: RRset
    expires: float
    seq: int
    next: _Labels | bytes
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
    name: Name
    soa: RRset | None
    """None while only wildcard expansions were kept: no negative answer is made then."""
    soa_sigs: RRset | None
    soa_expires: float
    nsec_owners: list[_Labels] = field(default_factory=list)
    """NSEC owners in canonical DNSSEC order."""
    nsecs: dict[_Labels, _Entry] = field(default_factory=dict)
    nsec3_params: tuple[int, int, bytes] | None = None
    """(hash algorithm, iterations, salt) of the cached NSEC3 records."""
    nsec3_hashes: list[bytes] = field(default_factory=list)
    nsec3s: dict[bytes, _Entry] = field(default_factory=dict)
    wildcards: dict[tuple[_Labels, int], _Wildcard] = field(default_factory=dict)
    """Validated wildcard RRsets by (owner `*.…`, type)."""

    def __len__(self) -> int:
        return len(self.nsecs) + len(self.nsec3s) + len(self.wildcards)


class _OutOfHashes(Exception):
    pass


class DenialCache:
    """Validated NSEC/NSEC3 records per zone, and the negative answers they prove."""

    def __init__(self, max_records: int = 100_000) -> None:
        if max_records < 1:
            raise ValueError("max_records must be at least 1")
        self.max_records = max_records
        self._zones: dict[_Labels, _Zone] = {}
        self._order: OrderedDict[_Key, _Entry] = OrderedDict()
        """Every cached record, oldest added first."""
        self._wildcards: OrderedDict[tuple[_Labels, tuple[_Labels, int]], None] = OrderedDict()
        """Every kept wildcard RRset as (zone, (owner, type)), oldest added first; at most
        a tenth of `max_records`."""
        self._expiry: list[tuple[float, int, _Key]] = []
        """Heap of (expires, seq, key); entries whose seq no longer matches are stale."""
        self._seq = itertools.count()

    def __len__(self) -> int:
        """The number of cached NSEC/NSEC3 RRsets (expired ones linger until the next
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
        with their RRSIG RRsets). An NSEC/NSEC3 is kept only with an RRSIG of it made by
        `zone` (handed back to DO clients); RRsets owned outside `zone`, NSEC3 with an
        unknown algorithm or flags, or with iterations above the RFC 9276 limit, are
        ignored. NSEC3 records with other parameters than the zone's cached ones replace
        them all (the zone was re-salted). The SOA given replaces the zone's kept one."""
        if soa.rdtype != dns.rdatatype.SOA or soa.name != zone or len(soa) == 0:
            raise ValueError(f"not the SOA of {zone}: {soa.name} {soa.rdtype!r}")
        self._purge(now)
        zone = zone.canonicalize()
        zone_key = _labels(zone)
        negative_ttl = min(soa.ttl, min(rdata.minimum for rdata in soa))
        soa_ttl = min(negative_ttl, soa_sigs.ttl) if soa_sigs is not None else negative_ttl
        state = self._zones.get(zone_key) or _Zone(zone, soa, soa_sigs, now + soa_ttl)
        self._keep(state, records, negative_ttl, now)
        state.soa, state.soa_sigs, state.soa_expires = soa, soa_sigs, now + soa_ttl
        if state:
            self._zones[zone_key] = state
        self._bound()

    def _keep(self, state: _Zone, records: Sequence[RRset], ttl_cap: int, now: float) -> None:
        """Keep each NSEC/NSEC3 RRset of `records` that has an RRSIG by the zone among them,
        for min(its TTL, its RRSIG's, `ttl_cap`) seconds."""
        zone = state.name
        sigs = _signatures(zone, records)
        for rrset in records:
            if rrset.rdclass != dns.rdataclass.IN or rrset.rdtype not in (_NSEC, _NSEC3):
                continue
            rrsig = sigs.get((rrset.name.canonicalize(), rrset.rdtype))
            if rrsig is None or len(rrset) != 1:
                continue
            ttl = min(rrset.ttl, rrsig.ttl, ttl_cap)
            if ttl <= 0:
                continue
            if rrset.rdtype == _NSEC:
                self._add_nsec(zone, state, rrset, rrsig, now + ttl)
            else:
                self._add_nsec3(zone, state, rrset, rrsig, now + ttl)

    def _bound(self) -> None:
        """Drop the oldest records, and the oldest wildcards, beyond the bounds."""
        while len(self._order) > self.max_records:
            _, oldest = self._order.popitem(last=False)
            self._drop(oldest, from_order=False)
        while len(self._wildcards) > self.max_records // 10 + 1:
            (zone_key, key), _ = self._wildcards.popitem(last=False)
            state = self._zones.get(zone_key)
            if state is not None:
                state.wildcards.pop(key, None)
                if not state:
                    del self._zones[zone_key]

    def add_wildcard(
        self,
        zone: Name,
        wildcard: Name,
        rrset: RRset,
        sigs: RRset,
        proofs: Sequence[RRset],
        now: float,
        ttl: int,
    ) -> None:
        """Keep a validated wildcard expansion of `zone`: `rrset` (owned by the name it
        answered) as the RRset of `wildcard` (`*.…`) with its RRSIGs `sigs`, for `ttl`
        seconds, and the NSEC/NSEC3 records of `proofs` (validated, with their RRSIGs)
        that showed the expanded name does not exist."""
        if wildcard.labels[:1] != (b"*",) or not wildcard.is_subdomain(zone) or ttl <= 0:
            return
        self._purge(now)
        zone = zone.canonicalize()
        zone_key = _labels(zone)
        state = self._zones.get(zone_key) or _Zone(zone, None, None, now)
        self._keep(state, proofs, ttl, now)
        key = (_labels(wildcard), int(rrset.rdtype))
        state.wildcards[key] = _Wildcard(
            dns.rrset.from_rdata_list(wildcard, ttl, list(rrset)),
            dns.rrset.from_rdata_list(wildcard, ttl, list(sigs)),
            now + ttl,
        )
        self._zones[zone_key] = state
        self._wildcards[(zone_key, key)] = None
        self._wildcards.move_to_end((zone_key, key))
        self._bound()

    def _add_nsec(
        self, zone: Name, state: _Zone, rrset: RRset, sigs: RRset, expires: float
    ) -> None:
        if not rrset.name.is_subdomain(zone):
            return
        owner = _labels(rrset.name)
        rdata = rrset[0]
        key = (_labels(zone), _NSEC, owner)
        entry = self._entry(key, rrset, sigs, expires, _labels(rdata.next), rdata.windows)
        if owner not in state.nsecs:
            bisect.insort(state.nsec_owners, owner)
        state.nsecs[owner] = entry

    def _add_nsec3(
        self, zone: Name, state: _Zone, rrset: RRset, sigs: RRset, expires: float
    ) -> None:
        owner = rrset.name
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
            for old in state.nsec3s.values():
                self._order.pop(old.key, None)
            state.nsec3s.clear()
            state.nsec3_hashes.clear()
            state.nsec3_params = params
        key = (_labels(zone), _NSEC3, owner_hash)
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
        following: _Labels | bytes,
        windows: Iterable[tuple[int, bytes]],
    ) -> _Entry:
        seq = next(self._seq)
        entry = _Entry(key, rrset, sigs, expires, seq, following, bitmap_types(windows))
        self._order[key] = entry
        self._order.move_to_end(key)
        heapq.heappush(self._expiry, (expires, seq, key))
        if len(self._expiry) > 2 * len(self._order) + 64:
            self._expiry = [(e.expires, e.seq, e.key) for e in self._order.values()]
            heapq.heapify(self._expiry)
        return entry

    # --- forgetting --------------------------------------------------------------------

    def forget_zone(self, zone: Name) -> None:
        """Drop every record kept for `zone` (not those of zones below it)."""
        zone_key = _labels(zone)
        state = self._zones.pop(zone_key, None)
        if state is None:
            return
        for key in state.wildcards:
            self._wildcards.pop((zone_key, key), None)
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
            _remove_sorted(state.nsec_owners, state.nsecs, owner)
        else:
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
        cached zone holding `name` (for DS: holding its parent side), or None. NSEC3
        hashes are charged to `budget`; when it runs out the answer is None."""
        self._purge(now)
        key = _labels(name)
        state = self._zone_of(key, qtype)
        if state is None or state.soa is None or state.soa_expires <= now:
            return None
        answer = None
        if state.nsecs:
            answer = self._by_nsec(state, name, key, qtype)
        if answer is None and state.nsec3s:
            try:
                answer = self._by_nsec3(state, name, key, qtype, budget)
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
        return Synthesized(nxdomain, state.name, _with_ttl(state.soa, ttl), tuple(out), ttl)

    def wildcard(
        self, name: Name, qtype: int, now: float, budget: HashBudget
    ) -> WildcardAnswer | None:
        """The answer to (`name`, `qtype`) from a kept wildcard: when kept NSEC or NSEC3
        records show the name does not exist and its closest encloser holds a kept
        wildcard RRset of `qtype` (or a CNAME, for another type), that RRset renamed to
        `name`, with the record that shows it (for NSEC3: covers the next closer name);
        else None. NSEC3 hashes are charged to `budget`."""
        if dns.rdatatype.is_metatype(qtype) or qtype in _NOT_FROM_WILDCARDS:
            return None
        self._purge(now)
        key = _labels(name)
        state = self._zone_of(key, qtype)
        if state is None or not state.wildcards:
            return None
        try:
            found_cover = self._wildcard_cover(state, key, qtype, budget)
        except _OutOfHashes:
            return None
        if found_cover is None:
            return None
        cover, encloser = found_cover
        wildcard = (*key[:encloser], b"*")
        found = state.wildcards.get((wildcard, qtype))
        if found is None and qtype != dns.rdatatype.CNAME:
            found = state.wildcards.get((wildcard, dns.rdatatype.CNAME))
        if found is None:
            return None
        ttl = int(min(found.expires, cover.expires) - now)
        if ttl <= 0:
            return None
        return WildcardAnswer(
            state.name,
            dns.rrset.from_rdata_list(name, ttl, list(found.rrset)),
            dns.rrset.from_rdata_list(name, ttl, list(found.sigs)),
            (_with_ttl(cover.rrset, ttl), _with_ttl(cover.sigs, ttl)),
            ttl,
        )

    def _wildcard_cover(
        self, state: _Zone, key: _Labels, qtype: int, budget: HashBudget
    ) -> tuple[_Entry, int] | None:
        """The kept record showing the name does not exist, and its closest encloser's
        length; None if the kept records do not show it."""
        if state.nsecs:
            found = _nsec_for(state, key)
            if found is not None and found[1] is not None:
                return found[0], found[1]
        if state.nsec3s:
            # A wildcard answer's proof is the NSEC3 covering the next closer name (RFC
            # 5155 §7.2.6); the kept wildcard itself shows its parent exists. So: the
            # deepest ancestor with a kept wildcard, if the next name below it towards
            # the question is covered (and no opt-out span: an unsigned delegation could
            # be there), is the closest encloser.
            apex = len(state.name.labels)
            for length in range(len(key) - 1, apex - 1, -1):
                wildcard = (*key[:length], b"*")
                if (wildcard, qtype) not in state.wildcards and (
                    wildcard,
                    dns.rdatatype.CNAME,
                ) not in state.wildcards:
                    continue  # (safe to pass over: a deeper closest encloser would exist,
                    # so the next closer name below this one would not be covered)
                cover = _nsec3_covering(state, _hasher(state, budget)(key[: length + 1]))
                if cover is None or cover.rrset[0].flags & _OPT_OUT:
                    return None
                return cover, length
        return None

    def _zone_of(self, key: _Labels, qtype: int) -> _Zone | None:
        """The deepest cached zone at or above the name; for DS, strictly above it (the
        parent side of a delegation holds its DS)."""
        depth = len(key) - 1 if qtype == dns.rdatatype.DS and len(key) > 1 else len(key)
        for length in range(depth, 0, -1):
            state = self._zones.get(key[:length])
            if state is not None:
                return state
        return None

    def _by_nsec(
        self, state: _Zone, name: Name, key: _Labels, qtype: int
    ) -> tuple[bool, list[_Entry]] | None:
        zone = state.name
        found = _nsec_for(state, key)
        if found is None:
            return None
        before, encloser = found
        if encloser is None:
            return _nodata(zone, name, qtype, [before])  # the name exists: NODATA at most
        wildcard = (*key[:encloser], b"*")
        used = [before]
        at_wildcard = _at_or_before(state.nsec_owners, state.nsecs, wildcard)
        if at_wildcard is not None and at_wildcard is not before:
            used.append(at_wildcard)
        if prove_nxdomain(name, zone, _rrsets(used)).status is DenialStatus.SECURE:
            return True, used
        return _nodata(zone, name, qtype, used)

    def _by_nsec3(
        self, state: _Zone, name: Name, key: _Labels, qtype: int, budget: HashBudget
    ) -> tuple[bool, list[_Entry]] | None:
        zone = state.name
        digest = _hasher(state, budget)
        walked = _nsec3_walk(state, key, digest)
        if walked is None:
            return None
        matched, encloser, cover = walked
        if cover is None:
            return _nodata(zone, name, qtype, [matched], budget)
        wildcard_digest = digest((*key[:encloser], b"*"))
        at_wildcard = state.nsec3s.get(wildcard_digest) or _nsec3_covering(state, wildcard_digest)
        if at_wildcard is None:
            return None
        used = _unique([matched, cover, at_wildcard])
        rrsets = _rrsets(used)
        # The proof for the next closer name is the proof for every name below it (same
        # closest encloser, same wildcard) and costs three hashes, not one per label.
        next_closer = _name(key[: encloser + 1])
        if prove_nxdomain(next_closer, zone, rrsets, budget).status is DenialStatus.SECURE:
            return True, used
        return _nodata(zone, next_closer, qtype, used, budget)


# --- helpers -------------------------------------------------------------------------


def _hasher(state: _Zone, budget: HashBudget) -> Callable[[_Labels], bytes]:
    """The zone's NSEC3 hash of a name, each one charged to `budget` (_OutOfHashes when
    it is spent)."""
    assert state.nsec3_params is not None
    algorithm, iterations, salt = state.nsec3_params

    def digest(of: _Labels) -> bytes:
        if budget.remaining <= 0:
            raise _OutOfHashes
        budget.remaining -= 1
        text = dns.dnssec.nsec3_hash(_name(of), salt, iterations, algorithm)
        return base64.b32hexdecode(text)

    return digest


def _nsec3_walk(
    state: _Zone, key: _Labels, digest: Callable[[_Labels], bytes]
) -> tuple[_Entry, int, _Entry | None] | None:
    """Walk down from the apex: each ancestor of the name matched by a kept NSEC3 (and
    not a cut) until the first with none, which must be covered by one: that is the next
    closer name. Returns the NSEC3 matching the closest encloser, its length, and the
    NSEC3 covering the next closer name (None when the name itself is matched); None
    when the kept records cannot tell."""
    apex = len(state.name.labels)
    matched = state.nsec3s.get(digest(key[:apex]))
    if matched is None:
        return None
    encloser = apex
    for length in range(apex + 1, len(key) + 1):
        if matched.is_cut:
            return None
        child_digest = digest(key[:length])
        match = state.nsec3s.get(child_digest)
        if match is None:
            cover = _nsec3_covering(state, child_digest)
            return None if cover is None else (matched, encloser, cover)
        matched, encloser = match, length
    return matched, encloser, None


def _nsec_for(state: _Zone, key: _Labels) -> tuple[_Entry, int | None] | None:
    """The kept NSEC that speaks for the name, and the length of the closest encloser it
    shows when it shows the name does not exist (RFC 4592 §3.3.1: the longest ancestor of
    the name shared with its owner or next name); None for the length when the NSEC shows
    the name exists (as its owner, or an empty non-terminal before its next name). None
    below a delegation or DNAME the records show (another zone's business), or when no
    kept NSEC covers the name (the last one's next name is the apex: a miss)."""
    apex = len(state.name.labels)
    for length in range(apex, len(key)):
        cut = state.nsecs.get(key[:length])
        if cut is not None and cut.is_cut:
            return None
    before = _at_or_before(state.nsec_owners, state.nsecs, key)
    if before is None:
        return None
    owner, following = before.key[2], before.next
    assert isinstance(owner, tuple) and isinstance(following, tuple)
    if owner == key or (len(following) > len(key) and following[: len(key)] == key):
        return before, None
    if not (key < following or following == key[:apex]):
        return None
    return before, max(_shared(key, owner), _shared(key, following), apex)


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


def _at_or_before(
    owners: list[_Labels], entries: dict[_Labels, _Entry], key: _Labels
) -> _Entry | None:
    """The NSEC with the greatest owner <= the name in canonical order."""
    index = bisect.bisect_right(owners, key)
    return entries[owners[index - 1]] if index else None


def _shared(a: _Labels, b: _Labels) -> int:
    """How many labels (from the root) two names share: their common ancestor's length."""
    count = 0
    for left, right in zip(a, b, strict=False):
        if left != right:
            break
        count += 1
    return count


def _name(key: _Labels) -> Name:
    return Name(tuple(reversed(key)))


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


def _remove_sorted(keys: list, entries: dict, key: _Labels | bytes) -> None:
    if entries.pop(key, None) is None:
        return
    index = bisect.bisect_left(keys, key)
    if index < len(keys) and keys[index] == key:
        del keys[index]


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


def _b32hex(label: bytes) -> bytes | None:
    text = label.upper()
    text += b"=" * (-len(text) % 8)
    try:
        return base64.b32hexdecode(text)
    except (binascii.Error, ValueError):
        return None

"""The resolver's cache: RRsets with TTLs and credibility ranks, negative answers, LRU bound.

Owns: storing and expiring RRsets and negative answers (RFC 2308), the RFC 2181 §5.4.1
rule that lower-ranked data (glue, additional, non-authoritative) never replaces
higher-ranked data, finding the closest cached zone cut, and evicting the least
recently used entries beyond the configured bound.
Must never: read the system clock (it is given a `Clock`) or decide what to cache (the
scrubber does); it stores what it is handed under the rank it is handed.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass

import dns.name
import dns.rdatatype
import dns.rrset

from poisonproof.net.base import Clock
from poisonproof.resolver.validator import Security


class Rank(enum.IntEnum):
    """RFC 2181 §5.4.1 trustworthiness, lowest first."""

    GLUE = 1
    """Additional-section data and glue: for reaching name servers only, never an answer."""
    AUTHORITY_NONAUTH = 2
    """The authority section of a referral or non-authoritative reply."""
    ANSWER_NONAUTH = 3
    """The answer section of a non-authoritative reply (e.g. from a forwarder)."""
    AUTHORITY_AUTH = 4
    """The authority section of an authoritative answer."""
    ANSWER_AUTH = 5
    """The answer section of an authoritative answer."""


ANSWERABLE = Rank.ANSWER_NONAUTH
"""The lowest rank a client may be answered from."""


@dataclass
class _Entry:
    rrset: dns.rrset.RRset
    expires: float
    rank: Rank
    sigs: dns.rrset.RRset | None = None
    security: Security = Security.UNCHECKED
    reason: tuple[int, str] | None = None
    """Why it is bogus (EDE code, text)."""
    proofs: tuple[dns.rrset.RRset, ...] = ()
    """For an RRset expanded from a wildcard: the NSEC/NSEC3 proof and its RRSIGs."""


@dataclass(frozen=True)
class Cached:
    """A cached RRset with its signatures and what validation said of it."""

    rrset: dns.rrset.RRset
    sigs: dns.rrset.RRset | None
    security: Security
    reason: tuple[int, str] | None
    proofs: tuple[dns.rrset.RRset, ...] = ()


@dataclass(frozen=True)
class Negative:
    """A cached NXDOMAIN (rdtype None) or NODATA, with the SOA that proves it."""

    name: dns.name.Name
    rdtype: dns.rdatatype.RdataType | None
    soa: dns.rrset.RRset | None
    ttl: int
    rank: Rank
    proofs: tuple[dns.rrset.RRset, ...] = ()
    """The SOA's and the NSEC/NSEC3 records' RRSIGs and the NSEC/NSEC3 records."""
    security: Security = Security.UNCHECKED
    reason: tuple[int, str] | None = None

    @property
    def nxdomain(self) -> bool:
        return self.rdtype is None


@dataclass
class _NegativeEntry:
    soa: dns.rrset.RRset | None
    expires: float
    rank: Rank
    proofs: tuple[dns.rrset.RRset, ...] = ()
    security: Security = Security.UNCHECKED
    reason: tuple[int, str] | None = None


_Key = tuple[dns.name.Name, int]
_NXDOMAIN_TYPE = -1
NO_SOA_NEGATIVE_TTL = 5
"""Seconds a negative answer that carried no SOA (so no TTL) is kept (Knot's minimum)."""
_GLUE_SPACE = 1 << 17
"""Keys (name, _GLUE_SPACE + type) hold the parent side's glue, apart from the child's data."""
_CHILD_NS_SPACE = 2 << 17
"""Keys (zone, _CHILD_NS_SPACE + NS) hold the NS set a zone's own answers carried."""


class Cache:
    """RRset and negative cache; `ranked=False` lets any data replace any (pre-2008 caches)."""

    def __init__(
        self,
        clock: Clock,
        *,
        max_entries: int = 200_000,
        min_ttl: int = 0,
        max_ttl: int = 86_400,
        max_negative_ttl: int = 3_600,
        ranked: bool = True,
    ) -> None:
        self.clock = clock
        self.max_entries = max_entries
        self.min_ttl = min_ttl
        self.max_ttl = max_ttl
        self.max_negative_ttl = max_negative_ttl
        self.ranked = ranked
        self._entries: OrderedDict[_Key, _Entry | _NegativeEntry] = OrderedDict()
        self.writes = 0
        """Changes to the entries (stores, validation marks, removals): while it stays the
        same, a lookup that found nothing finds nothing again."""
        self.evictions = 0
        self.refused_by_rank = 0
        self.dname_count = 0
        """DNAME RRsets ever stored (0: lookups need not look for DNAMEs above names)."""

    def __len__(self) -> int:
        return len(self._entries)

    def _now(self) -> float:
        return self.clock.wall()

    def _clamp(self, ttl: int) -> int:
        return max(self.min_ttl, min(self.max_ttl, ttl))

    def as_cached(self, rrset: dns.rrset.RRset) -> dns.rrset.RRset:
        """A copy of `rrset` with the TTL the cache gives it (min/max TTL applied)."""
        out = rrset.copy()
        out.ttl = self._clamp(rrset.ttl)
        return out

    def negative_soa(self, soa: dns.rrset.RRset) -> dns.rrset.RRset:
        """The SOA of a negative answer with its RFC 2308 TTL: min(TTL, MINIMUM), clamped."""
        out = soa.copy()
        out.ttl = min(self._clamp(min(soa.ttl, soa[0].minimum)), self.max_negative_ttl)  # type: ignore[attr-defined]
        return out

    def _store(self, key: _Key, entry: _Entry | _NegativeEntry) -> None:
        self.writes += 1
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            self.evictions += 1

    def _live(self, key: _Key) -> _Entry | _NegativeEntry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self._now():
            self.writes += 1
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def _may_replace(self, key: _Key, rank: Rank) -> bool:
        if not self.ranked:
            return True
        old = self._live(key)
        if old is not None and old.rank > rank:
            self.refused_by_rank += 1
            return False
        return True

    # -- positive data ------------------------------------------------------------------

    def put(self, rrset: dns.rrset.RRset, rank: Rank, sigs: dns.rrset.RRset | None = None) -> bool:
        """Store `rrset` unless a higher-ranked live copy exists; True when stored.

        Glue is also kept on its own (the parent side's view of the name server's
        addresses): when the child's authoritative addresses fail, the resolver can still
        try the ones the parent gave (Unbound's parent-side fallback).
        """
        if rank == Rank.GLUE and rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            stored = rrset.copy()
            stored.ttl = self._clamp(rrset.ttl)
            self._store(
                (rrset.name, _GLUE_SPACE + int(rrset.rdtype)),
                _Entry(stored, self._now() + stored.ttl, rank),
            )
        key = (rrset.name, int(rrset.rdtype))
        if not self._may_replace(key, rank):
            return False
        if rrset.rdtype == dns.rdatatype.DNAME:
            self.dname_count += 1
        stored = rrset.copy()
        ttl = self._clamp(rrset.ttl)
        stored.ttl = ttl
        self._store(key, _Entry(stored, self._now() + ttl, rank, sigs))
        # a positive answer for a name supersedes a negative one for it
        self._entries.pop((rrset.name, _NXDOMAIN_TYPE), None)
        return True

    def get(
        self, name: dns.name.Name, rdtype: int, min_rank: Rank = ANSWERABLE
    ) -> dns.rrset.RRset | None:
        """A copy of the cached RRset with its remaining TTL, if ranked at least `min_rank`."""
        entry = self._live((name, int(rdtype)))
        if not isinstance(entry, _Entry) or (self.ranked and entry.rank < min_rank):
            return None  # unranked (pre-2008) caches answer from glue and additional data too
        out = entry.rrset.copy()
        out.ttl = max(0, int(entry.expires - self._now()))
        return out

    def get_cached(
        self, name: dns.name.Name, rdtype: int, min_rank: Rank = ANSWERABLE
    ) -> Cached | None:
        """Like `get`, with the RRset's signatures and validation state."""
        entry = self._live((name, int(rdtype)))
        if not isinstance(entry, _Entry) or (self.ranked and entry.rank < min_rank):
            return None
        remaining = max(0, int(entry.expires - self._now()))
        out = entry.rrset.copy()
        out.ttl = remaining
        sigs = None
        if entry.sigs is not None:
            sigs = entry.sigs.copy()
            sigs.ttl = remaining
        return Cached(out, sigs, entry.security, entry.reason, entry.proofs)

    def mark(
        self,
        name: dns.name.Name,
        rdtype: int,
        security: Security,
        reason: tuple[int, str] | None = None,
        ttl: int | None = None,
        proofs: tuple[dns.rrset.RRset, ...] = (),
    ) -> None:
        """Record what validation said of a cached RRset (and shorten its life if told)."""
        entry = self._live((name, int(rdtype)))
        if isinstance(entry, _Entry):
            self.writes += 1
            entry.security = security
            entry.reason = reason
            entry.proofs = proofs
            if ttl is not None:
                entry.expires = min(entry.expires, self._now() + self._clamp(ttl))

    def mark_negative(
        self,
        name: dns.name.Name,
        rdtype: int | None,
        security: Security,
        reason: tuple[int, str] | None = None,
    ) -> None:
        key = (name, _NXDOMAIN_TYPE if rdtype is None else int(rdtype))
        entry = self._live(key)
        if isinstance(entry, _NegativeEntry):
            self.writes += 1
            entry.security = security
            entry.reason = reason

    def rank_of(self, name: dns.name.Name, rdtype: int) -> Rank | None:
        entry = self._live((name, int(rdtype)))
        return entry.rank if entry is not None else None

    # -- negative data ------------------------------------------------------------------

    def put_negative(
        self,
        name: dns.name.Name,
        rdtype: int | None,
        soa: dns.rrset.RRset | None,
        rank: Rank,
        proofs: tuple[dns.rrset.RRset, ...] = (),
    ) -> bool:
        """Cache NXDOMAIN (rdtype None) or NODATA; TTL = min(SOA TTL, SOA MINIMUM)."""
        key = (name, _NXDOMAIN_TYPE if rdtype is None else int(rdtype))
        if rdtype is not None and not self._may_replace(key, rank):
            return False
        ttl = NO_SOA_NEGATIVE_TTL
        if soa is not None:
            ttl = min(soa.ttl, soa[0].minimum)  # type: ignore[attr-defined]
        ttl = min(self._clamp(ttl), self.max_negative_ttl)
        stored = None
        if soa is not None:
            stored = soa.copy()
            stored.ttl = ttl
        self._store(key, _NegativeEntry(stored, self._now() + ttl, rank, proofs))
        return True

    def get_negative(self, name: dns.name.Name, rdtype: int) -> Negative | None:
        """NXDOMAIN for the name or an ancestor (RFC 8020), else NODATA for (name, rdtype)."""
        candidate = name
        while True:
            entry = self._live((candidate, _NXDOMAIN_TYPE))
            if isinstance(entry, _NegativeEntry):
                return self._negative(candidate, None, entry)
            if len(candidate.labels) <= 1:
                break
            candidate = candidate.parent()
        entry = self._live((name, int(rdtype)))
        if isinstance(entry, _NegativeEntry):
            return self._negative(name, dns.rdatatype.RdataType.make(rdtype), entry)
        return None

    def known_no_data(self, name: dns.name.Name, rdtype: int) -> bool:
        """Whether a live NODATA for exactly (name, rdtype) is cached (no copies made)."""
        return isinstance(self._live((name, int(rdtype))), _NegativeEntry)

    def _negative(
        self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType | None, entry: _NegativeEntry
    ) -> Negative:
        remaining = max(0, int(entry.expires - self._now()))
        soa = None
        if entry.soa is not None:
            soa = entry.soa.copy()
            soa.ttl = remaining
        proofs = []
        for rrset in entry.proofs:
            proof = rrset.copy()
            proof.ttl = min(proof.ttl, remaining)
            proofs.append(proof)
        return Negative(
            name, rdtype, soa, remaining, entry.rank, tuple(proofs), entry.security, entry.reason
        )

    # -- delegations --------------------------------------------------------------------

    def closest_delegation(self, name: dns.name.Name) -> dns.rrset.RRset | None:
        """The NS RRset of the deepest cached zone cut at or above `name`."""
        candidate = name
        while True:
            ns = self.get(candidate, dns.rdatatype.NS, min_rank=Rank.GLUE)
            if ns is not None:
                return ns
            if len(candidate.labels) <= 1:
                return None
            candidate = candidate.parent()

    def put_child_ns(self, rrset: dns.rrset.RRset) -> None:
        """The zone's NS set as the zone itself states it (not the parent's delegation)."""
        stored = rrset.copy()
        stored.ttl = self._clamp(rrset.ttl)
        key = (rrset.name, _CHILD_NS_SPACE + int(dns.rdatatype.NS))
        self._store(key, _Entry(stored, self._now() + stored.ttl, Rank.AUTHORITY_AUTH))

    def child_ns(self, zone: dns.name.Name) -> dns.rrset.RRset | None:
        entry = self._live((zone, _CHILD_NS_SPACE + int(dns.rdatatype.NS)))
        return entry.rrset.copy() if isinstance(entry, _Entry) else None

    def addresses(self, name: dns.name.Name, rdtypes: tuple[int, ...]) -> list[str]:
        """Cached addresses of a name server name, glue included."""
        found: list[str] = []
        for rdtype in rdtypes:
            for key_type in (int(rdtype), _GLUE_SPACE + int(rdtype)):
                entry = self._live((name, key_type))
                if isinstance(entry, _Entry):
                    found.extend(
                        r.address  # type: ignore[attr-defined]
                        for r in entry.rrset
                        if r.address not in found  # type: ignore[attr-defined]
                    )
        return found

    def forget(self, name: dns.name.Name, rdtype: int) -> None:
        """Drop the cached RRset (name, rdtype) and the parent-side glue copy of it."""
        self.writes += 1
        self._entries.pop((name, int(rdtype)), None)
        self._entries.pop((name, _GLUE_SPACE + int(rdtype)), None)

    def forget_negative(self, name: dns.name.Name, rdtype: int | None) -> None:
        """Drop a cached NXDOMAIN (rdtype None) or NODATA for exactly this name, if that is
        what the entry holds (a positive RRset stored under the same key stays)."""
        key = (name, _NXDOMAIN_TYPE if rdtype is None else int(rdtype))
        if isinstance(self._entries.get(key), _NegativeEntry):
            self.writes += 1
            del self._entries[key]

    def flush(self) -> None:
        self.writes += 1
        self._entries.clear()

    def export(self) -> list[tuple[_Key, _Entry | _NegativeEntry]]:
        """Every live entry, least recently used first (for cache files)."""
        now = self._now()
        return [(key, e) for key, e in list(self._entries.items()) if e.expires > now]

    def restore(self, key: _Key, entry: _Entry | _NegativeEntry) -> None:
        """Put back an entry read from a cache file, as most recently used."""
        if isinstance(entry, _Entry) and key[1] == dns.rdatatype.DNAME:
            self.dname_count += 1
        self._store(key, entry)

    def items(self) -> list[tuple[dns.rrset.RRset, Rank]]:
        """Live positive entries (for dumps and tests)."""
        now = self._now()
        return [
            (e.rrset, e.rank)
            for key, e in self._entries.items()
            if isinstance(e, _Entry) and e.expires > now and 0 <= key[1] < _GLUE_SPACE
        ]

"""Cache files: the resolver's RRset and negative cache written to disk and read back.

Owns: the file format (JSON lines: a header, then one entry per line with its absolute
expiry time, RFC 2181 rank, signatures, validation state and proofs, RRsets as
presentation-format rdata), writing it atomically (a temporary file renamed over the old),
and reading it back while skipping what expired in between and any line that does not
parse (counted, never fatal).
Must never: extend a TTL (an entry keeps the expiry it had), or hand the cache data of a
rank or validation state other than the one it was stored with.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from poisonproof.net.base import ManualClock
from poisonproof.resolver.cache import (
    _CHILD_NS_SPACE,
    _GLUE_SPACE,
    Cache,
    Rank,
    _Entry,  # the cache's own entry types and key spaces: this module is its persistence
    _NegativeEntry,
)
from poisonproof.resolver.validator import Security

FORMAT = "poisonproof-cache"
VERSION = 1


@dataclass(frozen=True)
class LoadResult:
    loaded: int
    expired: int
    bad_lines: int


def _rrset(rrset: dns.rrset.RRset) -> dict[str, Any]:
    return {
        "name": rrset.name.to_text(),
        "ttl": rrset.ttl,
        "type": int(rrset.rdtype),
        "rdata": [rdata.to_text() for rdata in rrset],
    }


def _from_rrset(data: dict[str, Any]) -> dns.rrset.RRset:
    rdtype = int(data["type"])
    rdatas = [dns.rdata.from_text(dns.rdataclass.IN, rdtype, text) for text in data["rdata"]]
    return dns.rrset.from_rdata_list(dns.name.from_text(data["name"]), int(data["ttl"]), rdatas)


def _line(key: tuple[dns.name.Name, int], entry: _Entry | _NegativeEntry) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": key[0].to_text(),
        "key": key[1],
        "expires": entry.expires,
        "rank": int(entry.rank),
        "security": entry.security.value,
        "reason": list(entry.reason) if entry.reason is not None else None,
        "proofs": [_rrset(p) for p in entry.proofs],
    }
    if isinstance(entry, _Entry):
        out["rrset"] = _rrset(entry.rrset)
        out["sigs"] = _rrset(entry.sigs) if entry.sigs is not None else None
    else:
        out["negative"] = True
        out["soa"] = _rrset(entry.soa) if entry.soa is not None else None
    return out


def _entry(data: dict[str, Any]) -> tuple[tuple[dns.name.Name, int], _Entry | _NegativeEntry]:
    key = (dns.name.from_text(data["name"]), int(data["key"]))
    rank = Rank(int(data["rank"]))
    security = Security(data["security"])
    reason = (int(data["reason"][0]), str(data["reason"][1])) if data["reason"] else None
    proofs = tuple(_from_rrset(p) for p in data["proofs"])
    expires = float(data["expires"])
    if data.get("negative"):
        soa = _from_rrset(data["soa"]) if data["soa"] is not None else None
        return key, _NegativeEntry(soa, expires, rank, proofs, security, reason)
    sigs = _from_rrset(data["sigs"]) if data["sigs"] is not None else None
    return key, _Entry(_from_rrset(data["rrset"]), expires, rank, sigs, security, reason, proofs)


def dump(cache: Cache, path: Path) -> int:
    """Write every live entry of `cache` to `path`; returns how many."""
    entries = cache.export()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as out:
        header = {"format": FORMAT, "version": VERSION, "saved": cache.clock.wall()}
        out.write(json.dumps(header) + "\n")
        for key, entry in entries:
            out.write(json.dumps(_line(key, entry), separators=(",", ":")) + "\n")
    os.replace(tmp, path)
    return len(entries)


class CacheFileError(Exception):
    """A file that is not a cache file (the message says why)."""


def load(cache: Cache, path: Path) -> LoadResult:
    """Add the entries of `path` that have not expired to `cache`."""
    now = cache.clock.wall()
    loaded = expired = bad = 0
    with path.open(encoding="utf-8") as lines:
        try:
            header = json.loads(next(lines))
        except (StopIteration, ValueError):
            raise CacheFileError(f"{path}: not a poisonproof cache file") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise CacheFileError(f"{path}: not a poisonproof cache file")
        if header.get("version") != VERSION:
            raise CacheFileError(f"{path}: cache file version {header.get('version')!r}")
        for text in lines:
            try:
                key, entry = _entry(json.loads(text))
            except Exception:  # one damaged line costs that entry, not the file
                bad += 1
                continue
            if entry.expires <= now:
                expired += 1
                continue
            cache.restore(key, entry)
            loaded += 1
    return LoadResult(loaded, expired, bad)


def describe(path: Path, now: float) -> list[str]:
    """The live entries of a cache file in presentation format, remaining TTLs, for people."""
    cache = Cache(ManualClock(now), max_entries=1 << 62)
    load(cache, path)
    out = []
    for (name, key), entry in cache.export():
        remaining = max(0, int(entry.expires - now))
        note = f"; rank={entry.rank.name} security={entry.security.value}"
        if isinstance(entry, _Entry):
            rrset = entry.rrset.copy()
            rrset.ttl = remaining
            where = ""
            if key >= _CHILD_NS_SPACE:
                where = " (the zone's own NS set)"
            elif key >= _GLUE_SPACE:
                where = " (parent-side glue)"
            out += [f"{line} {note}{where}" for line in rrset.to_text().splitlines()]
        else:
            what = "NXDOMAIN" if key < 0 else f"NODATA {dns.rdatatype.to_text(key)}"
            out.append(f"{name} {remaining} {what} {note}")
    return out

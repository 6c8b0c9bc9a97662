"""Memory of the resolver's caches: bytes per cached RRset, and a 1M-RRset cache in its bound.

Owns: filling a fresh `Cache` (bound `cache-size` = COUNT entries) with COUNT distinct
A RRsets plus 10% more, as the resolver stores answers (one `put` each, answer rank),
and measuring the process's resident memory before and after (/proc/self/statm), so bytes
per RRset include the dict, the LRU order and dnspython's objects; checking the bound held
(at most COUNT entries, the oldest evicted); doing the same for the fast path's stored
replies (`AnswerCache`, one rendered reply per query). Each part runs in a fresh process
of its own (memory one part freed would otherwise be reused by the next, unseen by the
resident size). Prints one JSON object.
Must never: touch the network or read another process's memory.

Run: `python bench/cache_memory.py [COUNT]` (default 1,000,000).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time

import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdtypes.IN.A import A

from poisonproof.net.real import SystemClock
from poisonproof.resolver.answer_cache import AnswerCache
from poisonproof.resolver.cache import Cache, Rank

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def a_rrset(i: int) -> dns.rrset.RRset:
    name = dns.name.Name((b"host%d" % i, b"zone%d" % (i % 1000), b"example", b""))
    address = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
    rrset = dns.rrset.RRset(name, dns.rdataclass.IN, dns.rdatatype.A)
    rrset.add(A(dns.rdataclass.IN, dns.rdatatype.A, address), 3600)
    return rrset


def measure_cache(count: int) -> dict[str, float]:
    gc.collect()
    before = rss()
    cache = Cache(SystemClock(), max_entries=count)
    started = time.perf_counter()
    for i in range(count):
        cache.put(a_rrset(i), Rank.ANSWER_AUTH)
    filled = time.perf_counter() - started
    gc.collect()
    at_count = rss()
    for i in range(count, count + count // 10):
        cache.put(a_rrset(i), Rank.ANSWER_AUTH)
    gc.collect()
    return {
        "rrsets": count,
        "bound": count,
        "bytes_per_rrset": (at_count - before) / count,
        "rss_full_bytes": float(rss()),
        "entries_after_overfill": float(len(cache)),
        "evictions": float(cache.evictions),
        "put_us": filled / count * 1e6,
    }


def measure_answers(count: int) -> dict[str, float]:
    gc.collect()
    before = rss()
    answers = AnswerCache(SystemClock(), max_entries=count)
    for i in range(count):
        rrset = a_rrset(i)
        query = dns.message.make_query(rrset.name, "A")
        reply = dns.message.make_response(query)
        reply.answer.append(rrset)
        wire = query.to_wire()
        answers.store(wire, reply.to_wire(), 3600)
        answers.lookup(wire)  # and its exact-bytes memo entry, as a served query makes
    gc.collect()
    return {"replies": count, "bytes_per_reply": (rss() - before) / count}


def in_fresh_process(part: str, count: int) -> dict[str, float]:
    """One part measured by a new process running this script (`--part PART COUNT`)."""
    done = subprocess.run(
        [sys.executable, __file__, "--part", part, str(count)],
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main(argv: list[str]) -> int:
    if argv[:1] == ["--part"]:
        part, count = argv[1], int(argv[2])
        print(json.dumps(measure_cache(count) if part == "cache" else measure_answers(count)))
        return 0
    count = int(argv[0]) if argv else 1_000_000
    result = {
        "cache": in_fresh_process("cache", count),
        "answers": in_fresh_process("answers", count // 10),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

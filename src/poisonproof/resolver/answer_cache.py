"""Rendered replies kept for the cache-hit fast path of the resolver's frontend.

Owns: storing the wire form of an answer (with its TTL field offsets) under the raw
query key, and producing the reply for a later identical question by patching ID,
question case and TTLs, with no dnspython on the way; entries expire with the shortest
TTL they carry and are bounded in number (LRU). With a `SharedAnswers` table (the
workers of `serve --workers N`), what it stores is also published there, and a local miss
adopts what another worker published for the same key (later hits are then local).
Must never: decide what an answer is (it only replays what the full path rendered, here
or in another worker), or read the system clock (it is given a `Clock`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from poisonproof.net.base import Clock
from poisonproof.resolver.shared_answers import SharedAnswers
from poisonproof.wire.message import patch_reply, query_key, ttl_offsets

MAX_STORED_SIZE = 512
"""Only replies that fit any client's UDP limit are replayed (no TC decisions here)."""


@dataclass
class _Stored:
    wire: bytes
    ttl_fields: list[int]
    stored_at: float
    expires: float
    variants: list[bytes] = field(default_factory=list)
    """Keys of `AnswerCache._exact` that replay this entry (dropped with it)."""


class AnswerCache:
    """Stored replies by query key, and in front of them an exact-bytes memo.

    The memo maps a query's bytes after its ID to the rest of the reply, already patched
    for that exact question (case) and aged for the current second: a memo hit costs one
    dict look-up and one concatenation. A memo value is good until the next whole second
    of the clock (when TTLs age) or the entry's expiry, whichever is first; a stale or
    missing one is rebuilt from the entry. Entries, not memo values, are kept in LRU order
    (a memo hit does not refresh its entry: refreshed at most once a second, on rebuild).
    """

    def __init__(
        self, clock: Clock, max_entries: int = 100_000, shared: SharedAnswers | None = None
    ) -> None:
        self.clock = clock
        self.max_entries = max_entries
        self.shared = shared
        """The workers' shared table, if any: stores are published to it, misses look in it."""
        self._entries: OrderedDict[bytes, _Stored] = OrderedDict()
        self._exact: dict[bytes, tuple[bytes, float]] = {}
        self.hits = 0
        self.generation = 0
        """How many times `clear` has run: a reply rendered before a clear is not stored after."""
        self.adopted = 0
        """Entries taken from the shared table (rendered by another worker)."""

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, query: bytes) -> bytes | None:
        return self.lookup_at(query, self.clock.wall())

    def lookup_at(self, query: bytes, now: float) -> bytes | None:
        """The reply to `query` at wall time `now`, or None (not stored, or unusual)."""
        memo = self._exact.get(query[2:])
        if memo is not None and now < memo[1]:
            self.hits += 1
            return query[:2] + memo[0]
        key = query_key(query)
        if key is None:
            return None
        entry = self._entries.get(key.key)
        if entry is not None and now >= entry.expires:
            self._drop(key.key)
            entry = None
        if entry is None:
            entry = self._adopt(key.key, now)
            if entry is None:
                return None
        self._entries.move_to_end(key.key)
        self.hits += 1
        elapsed = int(now - entry.stored_at)
        reply = patch_reply(entry.wire, query, key.question_end, entry.ttl_fields, elapsed)
        if len(self._exact) >= 2 * self.max_entries:
            self._exact.clear()  # variants lists may then name absent keys: harmless
        exact = query[2:]
        self._exact[exact] = (reply[2:], min(math.floor(now) + 1.0, entry.expires))
        entry.variants.append(exact)
        return reply

    def replay_batch(
        self,
        queries: list[bytes],
        now: float,
        peers: list[tuple[Any, ...]],
        admitted: Callable[[Any], bool | None],
    ) -> list[bytes | None]:
        """`lookup_at` for each query whose peer's host is `admitted` (the UDP fast path:
        one call per datagram batch, access control in the same pass)."""
        exact = self._exact.get
        replies: list[bytes | None] = [
            query[:2] + memo[0]
            if (memo := exact(query[2:])) is not None and now < memo[1] and admitted(peer[0])
            else None
            for query, peer in zip(queries, peers, strict=True)
        ]
        missing = replies.count(None)
        self.hits += len(replies) - missing
        if missing:
            for i, reply in enumerate(replies):
                if reply is None and admitted(peers[i][0]):
                    replies[i] = self.lookup_at(queries[i], now)  # counts its own hit
        return replies

    def _adopt(self, key: bytes, now: float) -> _Stored | None:
        """The shared table's unexpired entry for `key`, now also a local one; or None."""
        if self.shared is None:
            return None
        found = self.shared.read(key, now)
        if found is None:
            return None
        offsets = ttl_offsets(found.wire)  # worked out here: nothing but the reply is taken
        if offsets is None:
            return None
        entry = _Stored(found.wire, offsets, found.stored_at, found.expires)
        self._entries[key] = entry
        self._evict()
        self.adopted += 1
        return entry

    def _evict(self) -> None:
        while len(self._entries) > self.max_entries:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: bytes) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            for exact in entry.variants:
                self._exact.pop(exact, None)

    def store(self, query: bytes, reply: bytes, min_ttl: int) -> bool:
        """Keep `reply` (just rendered for `query`) for `min_ttl` seconds."""
        if min_ttl <= 0 or len(reply) > MAX_STORED_SIZE or reply[2] & 0x02:  # not TC
            return False
        key = query_key(query)
        offsets = ttl_offsets(reply)
        if key is None or offsets is None:
            return False
        now = self.clock.wall()
        # ages are whole seconds: expire one second early rather than serve a TTL of 0
        expires = now + max(0, min_ttl - 1)
        self._drop(key.key)
        self._entries[key.key] = _Stored(reply, offsets, math.floor(now), expires)
        self._evict()
        if self.shared is not None:
            self.shared.publish(key.key, reply, math.floor(now), expires)
        return True

    def clear(self) -> None:
        """Forget every reply (rendered under settings that no longer hold), shared ones too."""
        self.generation += 1
        self._entries.clear()
        self._exact.clear()
        if self.shared is not None:
            self.shared.forget()

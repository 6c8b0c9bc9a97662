"""Rendered replies kept for the cache-hit fast path of the resolver's frontend.

Owns: storing the wire form of an answer (with its TTL field offsets) under the raw
query key, and producing the reply for a later identical question by patching ID,
question case and TTLs, with no dnspython on the way; entries expire with the shortest
TTL they carry and are bounded in number (LRU).
Must never: decide what an answer is (it only replays what the full path rendered), or
read the system clock (it is given a `Clock`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from poisonproof.net.base import Clock
from poisonproof.wire.message import patch_reply, query_key, ttl_offsets

MAX_STORED_SIZE = 512
"""Only replies that fit any client's UDP limit are replayed (no TC decisions here)."""


@dataclass
class _Stored:
    wire: bytes
    ttl_fields: list[int]
    stored_at: float
    expires: float


class AnswerCache:
    def __init__(self, clock: Clock, max_entries: int = 100_000) -> None:
        self.clock = clock
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, _Stored] = OrderedDict()
        self.hits = 0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, query: bytes) -> bytes | None:
        key = query_key(query)
        if key is None:
            return None
        entry = self._entries.get(key.key)
        if entry is None:
            return None
        now = self.clock.wall()
        if now >= entry.expires:
            del self._entries[key.key]
            return None
        self._entries.move_to_end(key.key)
        self.hits += 1
        elapsed = int(now - entry.stored_at)
        return patch_reply(entry.wire, query, key.question_end, entry.ttl_fields, elapsed)

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
        self._entries[key.key] = _Stored(reply, offsets, math.floor(now), expires)
        self._entries.move_to_end(key.key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return True

    def clear(self) -> None:
        self._entries.clear()

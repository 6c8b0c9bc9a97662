"""Rendered authoritative replies, replayed for identical questions.

Owns: keeping the wire reply (and its RRL class) per raw query key, and replaying it
with the new query's ID and question case patched in; bounded (LRU). The engine does not
do DNS cookies (it ignores the option, as RFC 7873 asks of such a server), so a query
carrying one is the same question as one without it: a resolver that sends cookies is
replayed to as fast as one that does not. Zones do not change
between reloads, so entries live until the engine's zones are replaced (then cleared).
Must never: decide an answer; it replays what the engine rendered.
"""

from __future__ import annotations

from collections import OrderedDict

from poisonproof.wire.message import patch_reply, query_key

MAX_STORED_SIZE = 512
"""Only replies that fit any client's UDP limit are replayed (no TC decisions here)."""


class ReplyCache:
    def __init__(self, max_entries: int = 50_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, tuple[bytes, tuple[object, ...]]] = OrderedDict()
        self.hits = 0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, query: bytes) -> tuple[bytes, tuple[object, ...]] | None:
        """(reply for `query`, its RRL class), or None."""
        key = query_key(query, cookie_ignored=True)
        if key is None:
            return None
        entry = self._entries.get(key.key)
        if entry is None:
            return None
        self._entries.move_to_end(key.key)
        self.hits += 1
        return patch_reply(entry[0], query, key.question_end, [], 0), entry[1]

    def store(self, query: bytes, reply: bytes, rrl_class: tuple[object, ...]) -> None:
        if len(reply) > MAX_STORED_SIZE or reply[2] & 0x02:  # TC
            return
        key = query_key(query, cookie_ignored=True)
        if key is None:
            return
        self._entries[key.key] = (reply, rrl_class)
        self._entries.move_to_end(key.key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

"""RFC 7766 (RFC 1035 §4.2.2) framing of DNS messages on a byte stream.

Owns: turning a stream of bytes into whole messages and back (2-byte big-endian length).
Must never: do I/O; both the real and the simulated networks feed it bytes.
"""

from __future__ import annotations

MAX_MESSAGE = 65535


def frame(message: bytes) -> bytes:
    """Prefix `message` with its length; raises ValueError for a message over 65535 bytes."""
    if len(message) > MAX_MESSAGE:
        raise ValueError(f"DNS message of {len(message)} bytes cannot be framed (max 65535)")
    return len(message).to_bytes(2, "big") + message


class StreamDeframer:
    """Accumulates stream bytes and yields each complete message, in order."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add `data`; return every message now complete (possibly none, possibly several)."""
        self._buffer += data
        messages: list[bytes] = []
        while len(self._buffer) >= 2:
            length = int.from_bytes(self._buffer[:2], "big")
            if len(self._buffer) < 2 + length:
                break
            messages.append(bytes(self._buffer[2 : 2 + length]))
            del self._buffer[: 2 + length]
        return messages

    @property
    def pending(self) -> int:
        """Bytes held that do not yet form a whole message."""
        return len(self._buffer)

"""RFC 7766 stream framing."""

from __future__ import annotations

import pytest

from poisonproof.net.framing import StreamDeframer, frame


def test_messages_split_and_joined_arbitrarily_come_out_whole():
    messages = [b"a" * 12, b"b" * 300, b"", b"c" * 65535]
    stream = b"".join(frame(m) for m in messages)
    for chunk_size in (1, 2, 3, 7, 512, len(stream)):
        deframer = StreamDeframer()
        out = []
        for i in range(0, len(stream), chunk_size):
            out += deframer.feed(stream[i : i + chunk_size])
        assert out == messages
        assert deframer.pending == 0


def test_oversized_message_cannot_be_framed():
    with pytest.raises(ValueError, match="65536 bytes"):
        frame(b"x" * 65536)

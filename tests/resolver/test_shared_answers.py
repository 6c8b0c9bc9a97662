"""The answer table the workers of `serve --workers N` share: publish, adopt, and every
way a slot can be wrong (torn, damaged, expired, another key's, another generation's) is
a miss, never an exception and never a reply to the wrong question."""

from __future__ import annotations

import os
import random
import struct
from collections.abc import Iterator
from pathlib import Path

import dns.message
import pytest

from poisonproof.net.base import ManualClock
from poisonproof.resolver.answer_cache import AnswerCache
from poisonproof.resolver.shared_answers import (
    DIGEST_SIZE,
    FILE_HEADER_SIZE,
    KEY_START,
    MAGIC,
    MAX_KEY,
    SLOT_HEADER,
    SLOT_SIZE,
    SharedAnswers,
    SharedTableError,
    answers_key,
    create,
    digest,
    slot_of,
    table_size,
)
from poisonproof.wire.message import query_key
from tests.resolver.test_answer_cache import asked, query_and_reply

NOW = 1_000_000.25


@pytest.fixture
def table(tmp_path: Path) -> Path:
    return create(tmp_path, slots=64)


@pytest.fixture
def opened(table: Path) -> Iterator[list[SharedAnswers]]:
    views: list[SharedAnswers] = []
    yield views
    for view in views:
        view.close()


def worker(table: Path, opened: list[SharedAnswers], clock: ManualClock) -> AnswerCache:
    """An `AnswerCache` with its own mapping of `table`, as each worker process has."""
    view = SharedAnswers.open(table)
    opened.append(view)
    return AnswerCache(clock, shared=view)


def key_of(qname: str) -> bytes:
    found = query_key(asked(qname, 1))
    assert found is not None
    return found.key


def slot_bytes(table: Path, key: bytes, slots: int = 64) -> tuple[int, bytearray]:
    start = FILE_HEADER_SIZE + slot_of(key, slots) * SLOT_SIZE
    with table.open("rb") as f:
        f.seek(start)
        return start, bytearray(f.read(SLOT_SIZE))


def write_at(table: Path, offset: int, data: bytes) -> None:
    with table.open("r+b") as f:
        f.seek(offset)
        f.write(data)


def test_a_reply_one_worker_stored_is_adopted_by_another(table: Path, opened) -> None:
    clock = ManualClock(NOW)
    first, second = worker(table, opened, clock), worker(table, opened, clock)
    query, reply = query_and_reply("www.example.", "192.0.2.1", ttl=300)
    assert second.lookup(asked("www.example.", 5)) is None
    assert first.store(query, reply, 300)
    clock.now = NOW + 10.5
    wire = second.lookup(asked("WWW.example.", 9))
    assert wire is not None
    got = dns.message.from_wire(wire)
    assert got.id == 9 and got.question[0].name.to_text() == "WWW.example."
    assert got.answer[0].ttl == 300 - 10  # aged from when the first worker stored it
    assert second.adopted == 1 and len(second) == 1  # now a local entry: later hits local
    assert second.lookup(asked("www.example.", 10)) is not None
    assert second.adopted == 1


def test_adopted_entries_expire_when_the_stored_one_does(table: Path, opened) -> None:
    clock = ManualClock(NOW)
    first, second = worker(table, opened, clock), worker(table, opened, clock)
    query, reply = query_and_reply("www.example.", "192.0.2.1", ttl=30)
    assert first.store(query, reply, 30)
    clock.now = NOW + 28.9
    assert second.lookup(asked("www.example.", 1)) is not None
    clock.now = NOW + 29.0  # expires one second early, as a local entry does
    assert second.lookup(asked("www.example.", 2)) is None
    assert worker(table, opened, clock).lookup(asked("www.example.", 3)) is None


def test_a_slot_another_key_took_is_a_miss_for_the_first(tmp_path: Path) -> None:
    table = create(tmp_path, slots=2)
    names = [f"n{i}.example." for i in range(20)]
    slot = slot_of(key_of(names[0]), 2)
    a, b = [name for name in names if slot_of(key_of(name), 2) == slot][:2]
    view = SharedAnswers.open(table)
    try:
        reply_a = query_and_reply(a, "192.0.2.1")[1]
        reply_b = query_and_reply(b, "192.0.2.2")[1]
        assert view.publish(key_of(a), reply_a, NOW, NOW + 60)
        assert view.publish(key_of(b), reply_b, NOW, NOW + 60)
        assert view.read(key_of(a), NOW) is None
        found = view.read(key_of(b), NOW)
        assert found is not None and found.wire == reply_b
    finally:
        view.close()


def test_every_damaged_byte_of_a_slot_makes_a_miss(table: Path, opened) -> None:
    view = SharedAnswers.open(table)
    opened.append(view)
    qname = "www.example."
    reply = query_and_reply(qname, "192.0.2.1")[1]
    key = key_of(qname)
    assert view.publish(key, reply, NOW, NOW + 60)
    start, good = slot_bytes(table, key)
    used = KEY_START + len(key) + len(reply)
    for position in range(used):
        damaged = bytearray(good)
        damaged[position] ^= 0x5A
        write_at(table, start, bytes(damaged))
        assert view.read(key, NOW) is None, position
    write_at(table, start, bytes(good))
    assert view.read(key, NOW) is not None


def test_a_slot_torn_between_two_writes_is_a_miss(table: Path, opened) -> None:
    """A reader that copies a slot while another worker rewrites it sees part of each."""
    view = SharedAnswers.open(table)
    opened.append(view)
    qname = "www.example."
    key = key_of(qname)
    old = query_and_reply(qname, "192.0.2.1")[1]
    new = query_and_reply(qname, "192.0.2.2")[1]
    view.publish(key, old, NOW, NOW + 60)
    start, before = slot_bytes(table, key)
    view.publish(key, new, NOW + 1, NOW + 61)
    _, after = slot_bytes(table, key)
    for cut in range(1, KEY_START + len(key) + len(new)):
        for torn in (after[:cut] + before[cut:], before[:cut] + after[cut:]):
            write_at(table, start, bytes(torn))
            found = view.read(key, NOW + 2)
            assert found is None or found.wire in (old, new), cut
            if torn != before and torn != after:
                assert found is None, cut


def test_bad_lengths_and_times_are_misses_even_with_a_right_digest(table: Path, opened) -> None:
    """Content that no worker publishes, digest and all: still never a reply."""
    view = SharedAnswers.open(table)
    opened.append(view)
    qname = "www.example."
    key = key_of(qname)
    reply = query_and_reply(qname, "192.0.2.1")[1]
    other = query_and_reply("ftp.example.", "192.0.2.9")[1]
    start, _ = slot_bytes(table, key)
    nan, inf = float("nan"), float("inf")
    cases = [
        (0, len(key), len(reply), NOW, NOW + 60, key + reply, True),  # the good one
        (0, len(key), 9999, NOW, NOW + 60, key + reply, False),
        (0, len(key), 11, NOW, NOW + 60, key + reply[:11], False),
        (0, 65535, len(reply), NOW, NOW + 60, key + reply, False),
        (0, len(key), len(reply), nan, NOW + 60, key + reply, False),
        (0, len(key), len(reply), NOW, inf, key + reply, False),
        (0, len(key), len(reply), NOW + 5, NOW + 60, key + reply, False),  # future
        (1, len(key), len(reply), NOW, NOW + 60, key + reply, False),  # generation
        (0, len(key), len(other), NOW, NOW + 60, key + other, False),  # other question
        (0, len(key), len(reply), NOW, NOW + 60, key + reply[:2] + b"\x01" + reply[3:], False),
    ]
    for generation, key_length, wire_length, stored, expires, content, good in cases:
        body = SLOT_HEADER.pack(generation, key_length, wire_length, stored, expires)
        body = (body + content)[: SLOT_SIZE - DIGEST_SIZE]
        write_at(table, start, digest(body) + body)
        found = view.read(key, NOW + 1)
        assert (found is not None) is good, (generation, key_length, wire_length)


def test_random_bytes_anywhere_never_raise(table: Path, opened) -> None:
    view = SharedAnswers.open(table)
    opened.append(view)
    rng = random.Random(7)
    keys = [key_of(f"host{i}.example.") for i in range(200)]
    write_at(table, FILE_HEADER_SIZE, rng.randbytes(64 * SLOT_SIZE))
    assert all(view.read(key, NOW) is None for key in keys)
    cache = AnswerCache(ManualClock(NOW), shared=view)
    assert all(cache.lookup(asked(f"host{i}.example.", i)) is None for i in range(200))


def test_what_does_not_fit_a_slot_is_not_published(table: Path, opened) -> None:
    view = SharedAnswers.open(table)
    opened.append(view)
    assert not view.publish(b"k" * (MAX_KEY + 1), b"r" * 40, NOW, NOW + 60)
    assert not view.publish(b"", b"r" * 40, NOW, NOW + 60)
    assert not view.publish(b"k" * 20, b"r" * 513, NOW, NOW + 60)
    assert not view.publish(b"k" * 20, b"r" * 11, NOW, NOW + 60)
    assert view.read(b"k" * (MAX_KEY + 1), NOW) is None


def test_a_reload_forgets_what_was_shared_before_it(table: Path, opened) -> None:
    clock = ManualClock(NOW)
    first, second = worker(table, opened, clock), worker(table, opened, clock)
    query, reply = query_and_reply("www.example.", "192.0.2.1")
    assert first.store(query, reply, 300)
    second.clear()  # SIGHUP: this worker's replies of the old settings are gone
    assert second.lookup(asked("www.example.", 1)) is None
    first.clear()
    assert first.store(query, reply, 300)  # rendered under the new settings
    assert second.lookup(asked("www.example.", 2)) is not None


def test_answers_key_compares_the_name_in_lowercase_and_type_class_exactly() -> None:
    reply = query_and_reply("WWW.Example.", "192.0.2.1")[1]
    assert answers_key(reply, key_of("www.example."))
    assert not answers_key(reply, key_of("www.example.com."))
    https = dns.message.make_query("www.example.", "HTTPS")  # type 65: 0x41, "A"
    key = query_key(https.to_wire())
    assert key is not None
    assert not answers_key(reply, key.key)
    assert not answers_key(reply[:20], key_of("www.example."))
    assert not answers_key(reply, b"\x00\x01\x00\x01\x00\x01\x00")


def test_only_a_table_file_of_ours_is_opened(tmp_path: Path) -> None:
    table = create(tmp_path, slots=3)
    assert table.stat().st_size == table_size(3)
    assert table.stat().st_mode & 0o777 == 0o600
    SharedAnswers.open(table).close()
    other = tmp_path / "other"
    for content in [b"", b"x" * table_size(3), MAGIC + bytes(table_size(3) - len(MAGIC))]:
        other.write_bytes(content)
        other.chmod(0o600)
        with pytest.raises(SharedTableError):
            SharedAnswers.open(other)
    short = tmp_path / "short"
    short.write_bytes(table.read_bytes()[:-1])
    short.chmod(0o600)
    with pytest.raises(SharedTableError):
        SharedAnswers.open(short)
    table.chmod(0o622)
    with pytest.raises(SharedTableError):
        SharedAnswers.open(table)
    with pytest.raises(SharedTableError):
        SharedAnswers.open(tmp_path / "missing")
    link = tmp_path / "link"
    os.symlink(table, link)
    table.chmod(0o600)
    with pytest.raises(SharedTableError):
        SharedAnswers.open(link)
    assert struct.unpack_from("!16sII", table.read_bytes())[2] == 3

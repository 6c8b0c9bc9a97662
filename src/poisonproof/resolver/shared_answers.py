"""One table of rendered replies shared by the workers of a `serve --workers N`.

Owns: the layout of the table file (a header naming the format and the slot count, then
fixed-size slots), creating it (the parent process, in /dev/shm when it can), opening it
(each worker maps it), publishing a reply a worker's full path rendered into the one slot
its query key hashes to (crc32, the same in every process), and reading back the reply
stored under a key, checked end to end before anyone sees it.
Must never: lock or wait (workers read and write slots freely: a slot read while another
process writes it fails its digest and is a miss), hand out a reply stored under any key
but the one asked, its question unlike that key's, of another generation (replies
rendered before a reload), expired, or failing its digest; raise on what a slot holds
(any bad content is a miss); or change the file's size or anything outside its slots.
It stores what `AnswerCache.store` keeps (what a full path rendered) and nothing else.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import mmap
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"poisonproof-ans1"
"""First bytes of a table file (16): refuses to map any other file and write into it."""
_FILE_HEADER = struct.Struct("!16sII")  # magic, slot size, slot count
FILE_HEADER_SIZE = 64
MAX_KEY = 255 + 4 + 1 + 2
"""A query key: the name (at most 255 bytes), type and class, EDNS byte, two flag bytes."""
MAX_REPLY = 512
"""As `answer_cache.MAX_STORED_SIZE`: only replies that fit any client's UDP limit."""
DIGEST_SIZE = 16
"""blake2b-128 over the rest of a slot's used bytes: a torn or damaged slot passes it with
odds of 2**-128 (crc32 would let about one in 4e9 torn reads through)."""
SLOT_HEADER = struct.Struct("!IHHdd")  # generation, key length, reply length, stored, expires
BODY_START = DIGEST_SIZE
KEY_START = DIGEST_SIZE + SLOT_HEADER.size
SLOT_SIZE = (KEY_START + MAX_KEY + MAX_REPLY + 63) // 64 * 64
"""832 bytes: digest, header, the longest key and the longest reply, rounded to 64."""
SLOTS = 16_384
"""Slots of a table made by `create` (13.6 MB, allocated when made)."""
_SHM = Path("/dev/shm")


class SharedTableError(Exception):
    """The table file cannot be made or is not one (message for the operator)."""


@dataclass(frozen=True)
class SharedReply:
    """A reply read back from the table: as rendered, and when it was stored and expires."""

    wire: bytes
    stored_at: float
    expires: float


def table_size(slots: int) -> int:
    return FILE_HEADER_SIZE + slots * SLOT_SIZE


def slot_of(key: bytes, slots: int) -> int:
    """The slot of `key`: crc32, so every process picks the same one (`hash` is salted)."""
    return zlib.crc32(key) % slots


def digest(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=DIGEST_SIZE).digest()


def create(directory: Path | None = None, slots: int = SLOTS) -> Path:
    """A new, empty table file (mode 0600) of `slots` slots, its memory allocated now.

    In `directory`, else /dev/shm when there is one, else the temporary directory. The
    caller removes it. Allocating up front means a full tmpfs fails here, not later as a
    SIGBUS in a worker writing to a page that cannot be had.
    """
    if slots < 1:
        raise SharedTableError("a shared answer table needs at least one slot")
    if directory is None:
        directory = _SHM if _SHM.is_dir() and os.access(_SHM, os.W_OK) else None
    try:
        fd, name = tempfile.mkstemp(prefix="poisonproof-answers-", dir=directory)
    except OSError as error:
        raise SharedTableError(f"cannot make a shared answer table: {error}") from None
    path = Path(name)
    try:
        os.posix_fallocate(fd, 0, table_size(slots))
        os.pwrite(fd, _FILE_HEADER.pack(MAGIC, SLOT_SIZE, slots), 0)
    except OSError as error:
        path.unlink(missing_ok=True)
        raise SharedTableError(f"cannot make a shared answer table: {error}") from None
    finally:
        os.close(fd)
    return path


def _check_owner(fd: int, path: Path) -> int:
    """The file's size, once it is known to be ours and writable by nobody else."""
    info = os.fstat(fd)
    if info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise SharedTableError(f"{path}: not owned by this user alone")
    return info.st_size


def _check_header(table: mmap.mmap, size: int, path: Path) -> int:
    """The slot count the header of a mapped table file gives, checked against its size."""
    if size < FILE_HEADER_SIZE:
        raise SharedTableError(f"{path}: not a shared answer table (too short)")
    magic, slot_size, slots = _FILE_HEADER.unpack_from(table, 0)
    if magic != MAGIC or slot_size != SLOT_SIZE:
        raise SharedTableError(f"{path}: not a shared answer table of this version")
    if slots < 1 or size != table_size(slots):
        raise SharedTableError(f"{path}: size does not match its {slots} slots")
    return int(slots)


class SharedAnswers:
    """A worker's view of the table: publish what it rendered, read what any worker did."""

    def __init__(self, table: mmap.mmap, slots: int) -> None:
        self._table = table
        self.slots = slots
        self.generation = 0
        """Bumped by `forget`: replies of other generations are never read back."""

    @classmethod
    def open(cls, path: Path) -> SharedAnswers:
        """Map the table file at `path` (made by `create`); SharedTableError if it is not one."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
        except OSError as error:
            raise SharedTableError(f"{path}: {error.strerror}") from None
        try:
            size = _check_owner(fd, path)
            if size < FILE_HEADER_SIZE:
                raise SharedTableError(f"{path}: not a shared answer table (too short)")
            table = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as error:
            raise SharedTableError(f"{path}: {error}") from None
        finally:
            os.close(fd)
        try:
            return cls(table, _check_header(table, size, path))
        except SharedTableError:
            table.close()
            raise

    def close(self) -> None:
        self._table.close()

    def forget(self) -> None:
        """Never read back what was published so far (replies of the old settings)."""
        self.generation = (self.generation + 1) & 0xFFFFFFFF

    def publish(self, key: bytes, wire: bytes, stored_at: float, expires: float) -> bool:
        """Put `wire`, rendered by the full path for `key`, in the slot of `key`."""
        if not 0 < len(key) <= MAX_KEY or not 12 <= len(wire) <= MAX_REPLY:
            return False
        body = SLOT_HEADER.pack(self.generation, len(key), len(wire), stored_at, expires)
        body += key + wire
        start = FILE_HEADER_SIZE + slot_of(key, self.slots) * SLOT_SIZE
        self._table[start : start + DIGEST_SIZE + len(body)] = digest(body) + body
        return True

    def read(self, key: bytes, now: float) -> SharedReply | None:
        """The reply stored under exactly `key`, unexpired at `now`; None for anything else."""
        start = FILE_HEADER_SIZE + slot_of(key, self.slots) * SLOT_SIZE
        raw = self._table[start : start + SLOT_SIZE]  # one copy: every check is on it
        generation, key_length, wire_length, stored_at, expires = SLOT_HEADER.unpack_from(
            raw, BODY_START
        )
        if generation != self.generation or key_length != len(key) or key_length > MAX_KEY:
            return None
        wire_start = KEY_START + key_length
        end = wire_start + wire_length
        if raw[KEY_START:wire_start] != key or not 12 <= wire_length <= MAX_REPLY:
            return None
        if not (math.isfinite(stored_at) and math.isfinite(expires) and stored_at <= now < expires):
            return None
        if raw[:DIGEST_SIZE] != digest(raw[BODY_START:end]):
            return None  # torn (read while another worker wrote it) or damaged
        wire = raw[wire_start:end]
        return SharedReply(wire, stored_at, expires) if answers_key(wire, key) else None


def answers_key(wire: bytes, key: bytes) -> bool:
    """Whether `wire` is a reply (QR set, one question, not truncated) to the question of
    `key` (the name compared in lowercase, type and class exactly)."""
    name_length = len(key) - 3 - 4  # the key ends in type, class, EDNS byte, flag bytes
    question_end = 12 + name_length + 4
    return (
        name_length > 0
        and len(wire) >= question_end
        and wire[2] & 0x82 == 0x80
        and wire[4:6] == b"\x00\x01"
        and wire[12 : 12 + name_length].lower() == key[:name_length]
        and wire[12 + name_length : question_end] == key[name_length : name_length + 4]
    )


def remove(path: Path) -> None:
    """Delete a table file (workers that mapped it keep their mapping until they exit)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()

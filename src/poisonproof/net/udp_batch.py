"""A UDP listener that drains its socket on every wake-up of the event loop.

Owns: the listening UDP socket (SO_REUSEPORT on request, so several processes can share
a port), reading every datagram that is waiting when the socket becomes readable (with
recvmmsg/sendmmsg batches of up to `BATCH` datagrams where the C library has them, else
a non-blocking recvfrom loop), answering synchronously returned replies straight away
(no task, no future), and turning replies that are still being worked out into tasks
that send them when ready; counting handler and send errors.
Must never: interpret DNS (it hands bytes to the handler and sends back what it gets),
block the event loop (the socket is non-blocking; a reply the kernel will not take now is
dropped and counted, as UDP may), or let a handler exception stop the listener.
"""

from __future__ import annotations

import array
import asyncio
import ctypes
import ctypes.util
import errno
import logging
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from itertools import accumulate
from typing import Any, Literal, Protocol, cast

from poisonproof.net.base import Address, MessageHandler, Via

log = logging.getLogger("poisonproof.net")

BATCH = 64
"""Datagrams read per system call (recvmmsg) and most read per wake-up of the loop."""
MAX_QUERY = 4096
"""Longest datagram read; longer ones are truncated by the kernel and dropped."""


FastPath = Callable[[list[bytes], list[tuple[Any, ...]]], list["bytes | None"]]
"""Replies that can be given at once to a batch of datagrams (None: ask the handler)."""


class WithFastPath:
    """A message handler with a synchronous batch fast path in front of it.

    The UDP listener first offers each batch of datagrams to `fast` (with the peers'
    addresses), then hands those it did not answer to `handler`; elsewhere (TCP, the
    asyncio transport) only `handler` is used.
    """

    __slots__ = ("handler", "fast")

    def __init__(self, handler: MessageHandler, fast: FastPath) -> None:
        self.handler = handler
        self.fast = fast

    def __call__(
        self, data: bytes, peer: Address, via: Via
    ) -> bytes | None | Awaitable[bytes | None]:
        return self.handler(data, peer, via)


class _Stats(Protocol):
    handler_errors: int
    send_errors: int


# --------------------------------------------------------------------------- recvmmsg


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_Iovec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint)]


_SOCKADDR = 28  # sizeof(struct sockaddr_in6), enough for sockaddr_in too
_MSG_TRUNC = 0x20


def _libc_mmsg() -> tuple[Any, Any] | None:
    """recvmmsg and sendmmsg from the C library, or None where it lacks them.

    Linux on 64-bit only: the headers are written through 64-bit views, and MSG_TRUNC's
    value is Linux's.
    """
    if not sys.platform.startswith("linux") or ctypes.sizeof(ctypes.c_void_p) != 8:
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        recv, send = libc.recvmmsg, libc.sendmmsg
    except (OSError, AttributeError):
        return None
    recv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
    recv.restype = ctypes.c_int
    send.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    send.restype = ctypes.c_int
    return recv, send


_MMSG = _libc_mmsg()


_HDR_SIZE = ctypes.sizeof(_Mmsghdr)
_HDR_WORDS = _HDR_SIZE // 4
_HDR_QWORDS = _HDR_SIZE // 8
_NAMELEN = _Msghdr.msg_namelen.offset // 4
_MSG_FLAGS = _Msghdr.msg_flags.offset // 4
_MSG_LEN = _Mmsghdr.msg_len.offset // 4


class _MmsgBuffers:
    """Pre-allocated headers, buffers and address slots for one recvmmsg/sendmmsg batch.

    The headers are also seen as arrays of 32-bit words and of 64-bit words (the
    `*_words`, `send_ptrs` and `iov` views), so lengths and pointers are read and
    written by index, without a ctypes attribute access per datagram.
    """

    def __init__(self, count: int) -> None:
        self.count = count
        self.used = count
        """Headers the last recvmmsg filled (whose address lengths must be reset)."""
        self.data = (ctypes.c_char * (MAX_QUERY * count))()
        self.names = (ctypes.c_char * (_SOCKADDR * count))()
        self.out = (ctypes.c_char * (MAX_QUERY * count))()
        self.recv_iov = (_Iovec * count)()
        self.send_iov = (_Iovec * count)()
        self.recv_hdrs = (_Mmsghdr * count)()
        self.send_hdrs = (_Mmsghdr * count)()
        base, self.names_base = ctypes.addressof(self.data), ctypes.addressof(self.names)
        out = ctypes.addressof(self.out)
        for i in range(count):
            self.recv_iov[i].iov_base = base + i * MAX_QUERY
            self.recv_iov[i].iov_len = MAX_QUERY
            hdr = self.recv_hdrs[i].msg_hdr
            hdr.msg_name = self.names_base + i * _SOCKADDR
            hdr.msg_iov = ctypes.pointer(self.recv_iov[i])
            hdr.msg_iovlen = 1
            self.send_iov[i].iov_base = out + i * MAX_QUERY
            shdr = self.send_hdrs[i].msg_hdr
            shdr.msg_iov = ctypes.pointer(self.send_iov[i])
            shdr.msg_iovlen = 1
        self.recv_ptr = ctypes.addressof(self.recv_hdrs)
        self.send_ptr = ctypes.addressof(self.send_hdrs)
        self.data_view = memoryview(self.data).cast("B")
        self.names_view = memoryview(self.names).cast("B")
        self.out_view = memoryview(self.out).cast("B")
        self.recv_words = memoryview(self.recv_hdrs).cast("B").cast("I")
        self.send_words = memoryview(self.send_hdrs).cast("B").cast("I")
        self.send_ptrs = memoryview(self.send_hdrs).cast("B").cast("Q")
        self.iov = memoryview(self.send_iov).cast("B").cast("Q")
        # per-slot offsets and indices, worked out once instead of per datagram
        self.starts = [i * MAX_QUERY for i in range(count)]
        self.name_starts = [i * _SOCKADDR for i in range(count)]
        self.name_ptrs = array.array("Q", [self.names_base + i * _SOCKADDR for i in range(count)])
        self.out_base = out
        self.name_room = memoryview(array.array("I", [_SOCKADDR] * count))


def _decode_sockaddr(raw: bytes) -> tuple[Any, ...]:
    """(host, port) of an AF_INET or AF_INET6 sockaddr, as socket.recvfrom gives it."""
    family = int.from_bytes(raw[0:2], "little")
    port = int.from_bytes(raw[2:4], "big")
    if family == socket.AF_INET:
        return (socket.inet_ntop(socket.AF_INET, raw[4:8]), port)
    return (
        socket.inet_ntop(socket.AF_INET6, raw[8:24]),
        port,
        int.from_bytes(raw[4:8], "big"),
        int.from_bytes(raw[24:28], "little"),
    )


# --------------------------------------------------------------------------- the service


def bind_udp(address: Address, *, reuse_port: bool = False) -> socket.socket:
    """A non-blocking UDP socket bound to `address` (SO_REUSEPORT with `reuse_port`)."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class BatchedUdpService:
    """A bound UDP listener answering from `loop.add_reader`, a batch per wake-up."""

    def __init__(
        self,
        sock: socket.socket,
        handler: MessageHandler,
        stats: _Stats,
        *,
        mmsg: bool = True,
    ) -> None:
        self._sock = sock
        self._fd = sock.fileno()
        self._handler = handler
        self._stats = stats
        self._loop = asyncio.get_running_loop()
        self.pending: set[asyncio.Task[None]] = set()
        self._closed = False
        self._reading = True
        self.wakeups = 0
        """Times the socket was read (one recvmmsg call, or one recvfrom loop)."""
        self.datagrams = 0
        """Datagrams read."""
        self._buffers = _MmsgBuffers(BATCH) if mmsg and _MMSG is not None else None
        self._peers: dict[bytes, tuple[Any, ...]] = {}
        self._fast: FastPath | None = getattr(handler, "fast", None)
        sockname = sock.getsockname()
        self._address: Address = (sockname[0], sockname[1])
        reader: Callable[[], None] = self._read_mmsg if self._buffers else self._read_loop
        self._loop.add_reader(self._fd, reader)

    @property
    def address(self) -> Address:
        return self._address

    @property
    def batched(self) -> bool:
        """Whether this listener uses recvmmsg/sendmmsg."""
        return self._buffers is not None

    def _failed(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self._stats.handler_errors += 1
        log.exception("handler failed on a %d-byte udp message from %s", len(data), addr)

    def _later(self, reply: Awaitable[bytes | None], data: bytes, addr: tuple[Any, ...]) -> None:
        task = asyncio.ensure_future(self._send_later(reply, data, addr))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _send_later(
        self, reply: Awaitable[bytes | None], data: bytes, addr: tuple[Any, ...]
    ) -> None:
        try:
            answer = await reply
        except asyncio.CancelledError:
            raise
        except Exception:
            self._failed(data, addr)
            return
        if answer is not None and not self._closed:
            try:
                self._sock.sendto(answer, addr)
            except OSError:
                self._stats.send_errors += 1

    def _read_loop(self) -> None:
        """Without recvmmsg: recvfrom until the socket is empty (or BATCH datagrams)."""
        recvfrom, sendto = self._sock.recvfrom, self._sock.sendto
        datagrams: list[bytes] = []
        addrs: list[tuple[Any, ...]] = []
        for _ in range(BATCH):
            try:
                data, addr = recvfrom(MAX_QUERY)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._stats.send_errors += 1  # an ICMP error reported on the socket
                continue
            datagrams.append(data)
            addrs.append(addr)
        if not datagrams:
            return
        self.wakeups += 1
        self.datagrams += len(datagrams)
        fast = self._fast
        replies = fast(datagrams, addrs) if fast is not None else [None] * len(datagrams)
        slow = self._answer_slow
        for data, addr, reply in zip(datagrams, addrs, replies, strict=True):
            if reply is None and (reply := slow(data, addr)) is None:
                continue
            try:
                sendto(reply, addr)
            except OSError:
                self._stats.send_errors += 1
        if len(datagrams) == BATCH and self._reading:
            self._loop.call_soon(self._read_loop)  # more may be waiting: read after others ran

    def _answer_slow(self, data: bytes, addr: tuple[Any, ...]) -> bytes | None:
        """The handler's reply to a datagram the fast path could not answer: bytes to send
        now, or None (no reply, a reply sent later, or a handler error, counted)."""
        try:
            answer = self._handler(data, (addr[0], addr[1]), Via.UDP)
        except Exception:  # a server never dies on a packet
            self._failed(data, addr)
            return None
        if answer is None:
            return None
        if type(answer) is not bytes:
            self._later(answer, data, addr)  # type: ignore[arg-type]
            return None
        return answer

    def _read_mmsg(self) -> None:
        """recvmmsg a batch, answer what can be answered now, sendmmsg those replies."""
        assert _MMSG is not None and self._buffers is not None
        if not self._reading:
            return
        recvmmsg, sendmmsg = _MMSG
        b = self._buffers
        words = b.recv_words
        # the kernel wrote the address lengths of the last batch: give each its room again
        words[_NAMELEN : b.used * _HDR_WORDS : _HDR_WORDS] = b.name_room[: b.used]
        count = recvmmsg(self._fd, b.recv_ptr, b.count, 0, None)
        b.used = max(count, 0)
        if count <= 0:
            if count < 0 and ctypes.get_errno() not in (errno.EAGAIN, errno.EINTR):
                self._stats.send_errors += 1  # an ICMP error reported on the socket
            return
        self.wakeups += 1
        self.datagrams += count
        if count == 1:
            self._one(b, words)
            return
        lengths = words[_MSG_LEN : count * _HDR_WORDS : _HDR_WORDS].tolist()
        name_lengths = words[_NAMELEN : count * _HDR_WORDS : _HDR_WORDS].tolist()
        data, names = b.data, b.names  # a ctypes char array sliced is bytes: one copy
        datagrams = [data[at : at + length] for at, length in zip(b.starts, lengths, strict=False)]
        known, peer = self._peers.get, self._peer
        decoded = [
            known(raw := names[at : at + n]) or peer(raw)
            for at, n in zip(b.name_starts, name_lengths, strict=False)
        ]
        fast = self._fast
        answered: list[bytes | None] = (
            fast(datagrams, decoded) if fast is not None else [None] * count
        )
        sizes = [*map(len, answered)] if None not in answered else []
        if sizes and max(sizes) <= MAX_QUERY:  # all answered now, each fits a slot
            replies = cast(list[bytes], answered)
            ready = count
            send_ptrs = b.name_ptrs[:count]
            send_name_lengths: Any = words[_NAMELEN : count * _HDR_WORDS : _HDR_WORDS]
        else:
            replies, slots = self._complete(answered, datagrams, decoded, words)
            ready = len(replies)
            sizes = [*map(len, replies)]
            send_ptrs = array.array("Q", [b.name_ptrs[i] for i in slots])
            send_name_lengths = array.array("I", [words[i * _HDR_WORDS + _NAMELEN] for i in slots])
        if ready:
            # one copy of all the replies into the send buffer, then each header's
            # iov_base/iov_len, msg_name and msg_namelen written as strided slices
            blob = b"".join(replies)
            b.out_view[: len(blob)] = blob
            b.iov[0 : 2 * ready : 2] = array.array("Q", accumulate(sizes, initial=b.out_base))[
                :ready
            ]
            b.iov[1 : 2 * ready : 2] = array.array("Q", sizes)
            b.send_ptrs[0 : ready * _HDR_QWORDS : _HDR_QWORDS] = send_ptrs
            b.send_words[_NAMELEN : ready * _HDR_WORDS : _HDR_WORDS] = send_name_lengths
        sent = 0
        while sent < ready:
            done = sendmmsg(self._fd, b.send_ptr + sent * _HDR_SIZE, ready - sent, 0)
            if done <= 0:
                self._stats.send_errors += ready - sent  # the kernel would not take them
                break
            sent += done
        if count == b.count:
            self._loop.call_soon(self._read_mmsg)  # more may be waiting: read after others ran

    def _one(self, b: _MmsgBuffers, words: memoryview) -> None:
        """A batch of one datagram (what a quiet server mostly reads): its reply, if one is
        ready, goes out with a plain sendto, not through the sendmmsg headers."""
        raw = b.names[: words[_NAMELEN]]
        peer = self._peers.get(raw) or self._peer(raw)
        data = b.data[: words[_MSG_LEN]]
        fast = self._fast
        reply = fast([data], [peer])[0] if fast is not None else None
        if reply is None:
            if words[_MSG_FLAGS] & _MSG_TRUNC:
                return
            reply = self._answer_slow(data, peer)
            if reply is None:
                return
        self._send_one(reply, peer)

    def _complete(
        self,
        answered: list[bytes | None],
        datagrams: list[bytes],
        peers: list[tuple[Any, ...]],
        words: memoryview,
    ) -> tuple[list[bytes], list[int]]:
        """The replies to send in this batch and the slot of each: the fast path's, then
        the handler's for the rest (truncated datagrams dropped); a reply too long for a
        slot is sent on its own."""
        replies: list[bytes] = []
        slots: list[int] = []
        slow = self._answer_slow
        for i, reply in enumerate(answered):
            if reply is None:
                if words[i * _HDR_WORDS + _MSG_FLAGS] & _MSG_TRUNC:
                    continue
                if (reply := slow(datagrams[i], peers[i])) is None:
                    continue
            if len(reply) > MAX_QUERY:
                self._send_one(reply, peers[i])
                continue
            replies.append(reply)
            slots.append(i)
        return replies, slots

    def _peer(self, raw_name: bytes) -> tuple[Any, ...]:
        """The (host, port, ...) of a sockaddr, remembered for the next datagrams."""
        addr = _decode_sockaddr(raw_name)
        if len(self._peers) >= 65_536:
            self._peers.clear()
        self._peers[raw_name] = addr
        return addr

    def _send_one(self, reply: bytes, addr: tuple[Any, ...]) -> None:
        try:
            self._sock.sendto(reply, addr)
        except OSError:
            self._stats.send_errors += 1

    async def drain(self) -> None:
        """Wait until every reply still being worked out has been sent."""
        while self.pending:
            await asyncio.gather(*self.pending, return_exceptions=True)

    async def close(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._fd)
        await self.drain()
        if not self._closed:
            self._closed = True
            self._sock.close()
            log.debug(
                "udp %s: %d datagrams in %d reads", self._address, self.datagrams, self.wakeups
            )


UdpIo = Literal["mmsg", "loop", "transport"]
UDP_IO_ENV = "POISONPROOF_UDP_IO"
"""Environment variable choosing the UDP listener (benchmarks compare them)."""


def default_udp_io() -> UdpIo:
    """recvmmsg batches where the C library has them, else the recvfrom loop.

    `POISONPROOF_UDP_IO` (mmsg, loop or transport) overrides this.
    """
    chosen = os.environ.get(UDP_IO_ENV, "")
    if chosen in ("mmsg", "loop", "transport"):
        return cast(UdpIo, chosen)
    return "mmsg" if _MMSG is not None else "loop"

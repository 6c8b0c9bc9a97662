"""Writing a packet trace as a pcap file (LINKTYPE_RAW: IPv4/IPv6 packets) for Wireshark.

Owns: the pcap file format and building IP/UDP/TCP headers around recorded payloads.
Must never: capture anything itself; it writes what a network recorded.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

LINKTYPE_RAW = 101
_UDP, _TCP = 17, 6


@dataclass(frozen=True)
class Packet:
    """One message as it crossed the (simulated) wire."""

    time: float
    """Seconds since the Unix epoch."""
    proto: str
    """"udp" or "tcp" (a TCP packet carries one length-prefixed DNS message)."""
    src: tuple[str, int]
    dst: tuple[str, int]
    data: bytes
    spoofed: bool = False
    dropped: bool = False


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _transport(packet: Packet, pseudo: bytes) -> bytes:
    sport, dport = packet.src[1], packet.dst[1]
    if packet.proto == "udp":
        length = 8 + len(packet.data)
        header = struct.pack("!HHHH", sport, dport, length, 0)
        checksum = _checksum(pseudo + struct.pack("!BBH", 0, _UDP, length) + header + packet.data)
        return struct.pack("!HHHH", sport, dport, length, checksum or 0xFFFF) + packet.data
    payload = len(packet.data).to_bytes(2, "big") + packet.data
    header = struct.pack("!HHIIBBHHH", sport, dport, 1, 1, 5 << 4, 0x18, 65535, 0, 0)
    checksum = _checksum(
        pseudo + struct.pack("!BBH", 0, _TCP, len(header) + len(payload)) + header + payload
    )
    return header[:16] + struct.pack("!H", checksum) + header[18:] + payload


def ip_packet(packet: Packet) -> bytes:
    src, dst = ipaddress.ip_address(packet.src[0]), ipaddress.ip_address(packet.dst[0])
    proto = _UDP if packet.proto == "udp" else _TCP
    if src.version == 4 and dst.version == 4:
        body = _transport(packet, src.packed + dst.packed)
        header = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 64, proto, 0, src.packed, dst.packed
        )
        header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
        return header + body
    src6 = ipaddress.IPv6Address(f"::ffff:{src}") if src.version == 4 else src
    dst6 = ipaddress.IPv6Address(f"::ffff:{dst}") if dst.version == 4 else dst
    body = _transport(packet, src6.packed + dst6.packed)
    header = struct.pack("!IHBB16s16s", 6 << 28, len(body), proto, 64, src6.packed, dst6.packed)
    return header + body


def write_pcap(path: str | Path, packets: Iterable[Packet]) -> int:
    """Write `packets` (those not dropped) to `path`; returns how many were written."""
    count = 0
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_RAW))
        for packet in packets:
            if packet.dropped:
                continue
            raw = ip_packet(packet)
            seconds = int(packet.time)
            micros = int(round((packet.time - seconds) * 1e6))
            if micros >= 1_000_000:
                seconds, micros = seconds + 1, micros - 1_000_000
            out.write(struct.pack("<IIII", seconds, micros, len(raw), len(raw)) + raw)
            count += 1
    return count

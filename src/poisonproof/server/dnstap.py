"""dnstap output: the resolver's client and upstream messages as dnstap protobuf in Frame
Streams, to a file or a unix socket (readable by `dnstap-read`, `fstrm_capture`, ...).

Owns: encoding CLIENT_QUERY/CLIENT_RESPONSE and RESOLVER_QUERY/RESOLVER_RESPONSE messages
(dnstap-pb), the Frame Streams framing (fstrm: START/STOP for files, the READY/ACCEPT/
START ... STOP/FINISH handshake for sockets), and a writer thread fed through a bounded
queue so the event loop never waits on the disk or the collector.
Must never: change or delay a message (it only copies them), or block the event loop:
when the queue is full a message is dropped and counted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import queue
import socket
import threading
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, BinaryIO

import dnstap_pb
from fstrm import (
    FSTRM_CONTROL_ACCEPT,
    FSTRM_CONTROL_FINISH,
    FSTRM_CONTROL_READY,
    FSTRM_CONTROL_START,
    FSTRM_CONTROL_STOP,
    FstrmCodec,
)

from poisonproof.net.base import Address, MessageHandler, Network, ReplyFilter, Via

log = logging.getLogger("poisonproof.dnstap")

CONTENT_TYPE = b"protobuf:dnstap.Dnstap"
QUEUE_SIZE = 65_536
_M = dnstap_pb.Message


class DnstapError(Exception):
    """The dnstap destination cannot be used (the message says why)."""


def _connect(path: str, timeout: float = 5.0) -> socket.socket:
    """A unix socket to a Frame Streams reader, after the READY/ACCEPT handshake."""
    codec = FstrmCodec()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        sock.sendall(codec.encode(ctrl=FSTRM_CONTROL_READY, ct=[CONTENT_TYPE]))
        while not codec.process():
            chunk = sock.recv(4096)
            if not chunk:
                raise DnstapError(f"dnstap socket {path}: closed during the handshake")
            codec.append(chunk)
        ctrl, types, _ = codec.decode()
        if ctrl != FSTRM_CONTROL_ACCEPT or (types and CONTENT_TYPE not in types):
            raise DnstapError(f"dnstap socket {path}: reader did not accept {CONTENT_TYPE!r}")
        sock.sendall(codec.encode(ctrl=FSTRM_CONTROL_START, ct=[CONTENT_TYPE]))
    except OSError as error:
        sock.close()
        raise DnstapError(f"dnstap socket {path}: {error.strerror or error}") from None
    except BaseException:
        sock.close()
        raise
    return sock


class DnstapSink:
    """A Frame Streams writer on its own thread: a file, or a unix socket reader."""

    def __init__(self, destination: str, identity: str, version: str) -> None:
        self.destination = destination
        self.identity = identity.encode()
        self.version = version.encode()
        self.written = 0
        self.dropped = 0
        self._codec = FstrmCodec()
        self._queue: queue.Queue[bytes | None] = queue.Queue(QUEUE_SIZE)
        self._socket: socket.socket | None = None
        self._file: BinaryIO | None = None
        if destination.startswith("unix:"):
            self._socket = _connect(destination[5:])
        else:
            try:
                self._file = Path(destination).open("wb")  # noqa: SIM115 - closed by close()
            except OSError as error:
                raise DnstapError(f"dnstap file {destination}: {error.strerror or error}") from None
            self._file.write(self._codec.encode(ctrl=FSTRM_CONTROL_START, ct=[CONTENT_TYPE]))
        self._thread = threading.Thread(target=self._write_all, name="dnstap", daemon=True)
        self._thread.start()

    # -- encoding (event loop) ----------------------------------------------------------

    def message(
        self,
        kind: int,
        via: Via,
        query_address: Address | None = None,
        response_address: Address | None = None,
        query: bytes | None = None,
        response: bytes | None = None,
        query_time: float | None = None,
        response_time: float | None = None,
    ) -> None:
        frame = dnstap_pb.Dnstap()
        frame.type = dnstap_pb.Dnstap.MESSAGE
        frame.identity = self.identity
        frame.version = self.version
        m = frame.message
        m.type = kind  # type: ignore[assignment]
        m.socket_protocol = dnstap_pb.TCP if via is Via.TCP else dnstap_pb.UDP
        some = query_address or response_address
        if some is not None:
            ip = ipaddress.ip_address(some[0].split("%")[0])
            m.socket_family = dnstap_pb.INET6 if ip.version == 6 else dnstap_pb.INET
        if query_address is not None:
            m.query_address = ipaddress.ip_address(query_address[0].split("%")[0]).packed
            m.query_port = query_address[1]
        if response_address is not None:
            m.response_address = ipaddress.ip_address(response_address[0].split("%")[0]).packed
            m.response_port = response_address[1]
        if query is not None:
            m.query_message = query
        if response is not None:
            m.response_message = response
        if query_time is not None:
            m.query_time_sec, m.query_time_nsec = int(query_time), int(query_time % 1 * 1e9)
        if response_time is not None:
            m.response_time_sec = int(response_time)
            m.response_time_nsec = int(response_time % 1 * 1e9)
        try:
            self._queue.put_nowait(frame.SerializeToString())
        except queue.Full:
            self.dropped += 1

    # -- writing (its own thread) -------------------------------------------------------

    def _write_all(self) -> None:
        codec = FstrmCodec()
        while True:
            payload = self._queue.get()
            if payload is None:
                return
            batch = [codec.encode_data(payload)]
            while len(batch) < 1024:  # what else is waiting goes out in the same write
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                batch.append(codec.encode_data(more))
            try:
                self._write(b"".join(batch))
                self.written += len(batch)
            except OSError as error:
                log.error("dnstap output %s failed: %s", self.destination, error)
                self.dropped += len(batch)

    def _write(self, data: bytes) -> None:
        if self._socket is not None:
            self._socket.sendall(data)
        elif self._file is not None:
            self._file.write(data)
            if self._queue.empty():
                self._file.flush()

    def close(self) -> None:
        """Write what is queued, then STOP (and wait for FINISH on a socket)."""
        self._queue.put(None)
        self._thread.join(10)
        stop = self._codec.encode(ctrl=FSTRM_CONTROL_STOP)
        if self._file is not None:
            self._file.write(stop)
            self._file.close()
        if self._socket is not None:
            try:
                self._socket.sendall(stop)
                codec = FstrmCodec()
                while not codec.process():
                    chunk = self._socket.recv(4096)
                    if not chunk:
                        break
                    codec.append(chunk)
                else:
                    if codec.decode()[0] != FSTRM_CONTROL_FINISH:
                        log.warning("dnstap reader answered STOP without FINISH")
            except OSError as error:
                log.warning("dnstap socket close: %s", error)
            finally:
                self._socket.close()
        log.info("dnstap: %d messages written, %d dropped", self.written, self.dropped)


def tap_handler(sink: DnstapSink, handler: MessageHandler) -> MessageHandler:
    """`handler`, with every client query and the reply to it copied to `sink`."""

    def logged_later(
        pending: Awaitable[bytes | None], wire: bytes, peer: Address, via: Via, at: float
    ) -> Awaitable[bytes | None]:
        async def reply() -> bytes | None:
            data = await pending
            if data is not None:
                sink.message(_M.CLIENT_RESPONSE, via, peer, None, wire, data, at, time.time())
            return data

        return asyncio.ensure_future(reply())

    def tapped(wire: bytes, peer: Address, via: Via) -> bytes | None | Awaitable[bytes | None]:
        at = time.time()
        sink.message(_M.CLIENT_QUERY, via, peer, None, wire, None, at)
        reply = handler(wire, peer, via)
        if reply is None:
            return None
        if isinstance(reply, bytes):
            sink.message(_M.CLIENT_RESPONSE, via, peer, None, wire, reply, at, time.time())
            return reply
        return logged_later(reply, wire, peer, via, at)

    return tapped


class TappedNetwork:
    """A `Network` whose upstream exchanges are copied to a dnstap sink; the rest is as is."""

    def __init__(self, network: Network, sink: DnstapSink) -> None:
        self._network = network
        self._sink = sink

    def __getattr__(self, name: str) -> Any:
        return getattr(self._network, name)

    async def udp_exchange(
        self,
        query: bytes,
        server: Address,
        *,
        timeout: float,
        source: Address | None = None,
        reply_filter: ReplyFilter | None = None,
    ) -> tuple[bytes, Address]:
        at = time.time()
        self._sink.message(_M.RESOLVER_QUERY, Via.UDP, source, server, query, None, at)
        data, sender = await self._network.udp_exchange(
            query, server, timeout=timeout, source=source, reply_filter=reply_filter
        )
        self._sink.message(
            _M.RESOLVER_RESPONSE, Via.UDP, source, sender, query, data, at, time.time()
        )
        return data, sender

    async def tcp_exchange(self, query: bytes, server: Address, *, timeout: float) -> bytes:
        at = time.time()
        self._sink.message(_M.RESOLVER_QUERY, Via.TCP, None, server, query, None, at)
        data = await self._network.tcp_exchange(query, server, timeout=timeout)
        self._sink.message(
            _M.RESOLVER_RESPONSE, Via.TCP, None, server, query, data, at, time.time()
        )
        return data

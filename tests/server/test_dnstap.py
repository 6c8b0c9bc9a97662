"""dnstap output: a real `serve --dnstap FILE` read back by BIND's `dnstap-read`, and the
Frame Streams socket handshake with a reader on a unix socket."""

from __future__ import annotations

import socket
import subprocess
import threading
import time

import dns.message
import dns.query
import dns.rcode
import dnstap_pb
from fstrm import (
    FSTRM_CONTROL_ACCEPT,
    FSTRM_CONTROL_FINISH,
    FSTRM_CONTROL_READY,
    FSTRM_CONTROL_START,
    FSTRM_CONTROL_STOP,
    FSTRM_DATA_FRAME,
    FstrmCodec,
)

from poisonproof.net.base import Via
from poisonproof.server.dnstap import CONTENT_TYPE, DnstapSink
from tests.conftest import require_tool


def test_serve_writes_dnstap_that_dnstap_read_reads(start_resolver_process, world_thread, tmp_path):
    tap = tmp_path / "resolver.dnstap"
    server = start_resolver_process(
        *world_thread.serve_args(tmp_path),
        "--dnstap",
        str(tap),
    )
    for _ in range(2):  # a resolution, then a cache hit
        query = dns.message.make_query("www.bank.example", "A")
        reply = dns.query.udp(query, server.host, port=server.port, timeout=10)
        assert reply.rcode() == dns.rcode.NOERROR
    assert server.stop() == 0
    out = subprocess.run(
        [require_tool("dnstap-read"), str(tap)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    kinds = [line.split()[2] for line in lines]
    assert kinds.count("CQ") == 2 and kinds.count("CR") == 2
    assert kinds.count("RQ") >= 1 and kinds.count("RR") == kinds.count("RQ")
    client = [line for line in lines if line.split()[2] == "CQ"]
    assert all("127.0.0.1:" in line and "www.bank.example/IN/A" in line for line in client)
    upstream = [line for line in lines if line.split()[2] == "RQ"]
    assert all(f":{world_thread.port} UDP" in line for line in upstream)
    yaml = subprocess.run(
        [require_tool("dnstap-read"), "-y", str(tap)], capture_output=True, text=True, timeout=30
    ).stdout
    assert "identity: poisonproof" in yaml and "192.0.2.80" in yaml


class FrameStreamsReader:
    """A bidirectional Frame Streams reader (what fstrm_capture does) on a unix socket."""

    def __init__(self, path: str) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        self.frames: list[bytes] = []
        self.controls: list[int] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        conn, _ = self.listener.accept()
        codec = FstrmCodec()
        with conn:
            while True:
                while not codec.process():
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    codec.append(chunk)
                kind, types, payload = codec.decode()
                if kind == FSTRM_DATA_FRAME:
                    self.frames.append(payload)
                    continue
                self.controls.append(kind)
                if kind == FSTRM_CONTROL_READY:
                    assert CONTENT_TYPE in types
                    conn.sendall(codec.encode(ctrl=FSTRM_CONTROL_ACCEPT, ct=[CONTENT_TYPE]))
                elif kind == FSTRM_CONTROL_STOP:
                    conn.sendall(codec.encode(ctrl=FSTRM_CONTROL_FINISH))
                    return


def test_socket_output_does_the_frame_streams_handshake(tmp_path):
    path = str(tmp_path / "tap.sock")
    reader = FrameStreamsReader(path)
    sink = DnstapSink(f"unix:{path}", "resolver-1", "9.9")
    query = dns.message.make_query("example.", "A").to_wire()
    sink.message(
        dnstap_pb.Message.CLIENT_QUERY, Via.TCP, ("::1", 4242), None, query, None, time.time()
    )
    sink.close()
    reader.thread.join(5)
    assert reader.controls == [FSTRM_CONTROL_READY, FSTRM_CONTROL_START, FSTRM_CONTROL_STOP]
    (frame,) = reader.frames
    tap = dnstap_pb.Dnstap()
    tap.ParseFromString(frame)
    assert tap.identity == b"resolver-1" and tap.version == b"9.9"
    assert tap.message.type == dnstap_pb.Message.CLIENT_QUERY
    assert tap.message.socket_family == dnstap_pb.INET6
    assert tap.message.socket_protocol == dnstap_pb.TCP
    assert socket.inet_ntop(socket.AF_INET6, tap.message.query_address) == "::1"
    assert tap.message.query_port == 4242 and tap.message.query_message == query
    assert sink.written == 1 and sink.dropped == 0

"""systemd socket activation: `serve` answers on the sockets it is handed (LISTEN_FDS), by
`systemd-socket-activate` and by a harness passing a UDP and a TCP socket as fds 3 and 4."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import dns.message
import dns.query
import dns.rcode
import pytest

from poisonproof.server.systemd import listen_fds, notify
from tests.conftest import free_port, require_tool


def resolver_args(world, tmp_path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "poisonproof",
        "serve",
        "--root-hints",
        str(world.hints_file(tmp_path)),
        "--upstream-port",
        str(world.port),
        "--query-localhost",
        "on",
    ]


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def test_systemd_socket_activate_starts_serve_on_the_first_datagram(world_thread, tmp_path):
    port = free_port()
    log = (tmp_path / "activated.log").open("wb")
    proc = subprocess.Popen(
        [
            require_tool("systemd-socket-activate"),
            "--datagram",
            "--listen",
            f"127.0.0.1:{port}",
            *resolver_args(world_thread, tmp_path),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(0.5)  # the activator binds, then waits for traffic
        query = dns.message.make_query("www.bank.example", "A")
        reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=20)
        assert reply.rcode() == dns.rcode.NOERROR
        assert reply.answer[0][0].address == "192.0.2.80"
        assert stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    text = (tmp_path / "activated.log").read_text()
    assert f"socket activation: 127.0.0.1#{port}/udp" in text


def test_harness_passes_udp_and_tcp_sockets_as_fds_3_and_4(world_thread, tmp_path):
    port = free_port()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", port))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", port))
    tcp.listen(16)

    def as_fds_3_and_4() -> None:
        os.dup2(udp.fileno(), 3)
        os.dup2(tcp.fileno(), 4)

    log_path = tmp_path / "harness.log"
    ready = tmp_path / "ready"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                "/bin/sh",
                "-c",
                'LISTEN_PID=$$ LISTEN_FDS=2 exec "$@"',
                "sh",
                *resolver_args(world_thread, tmp_path),
                "--listen",
                "127.0.0.1:1",  # ignored: the handed-over sockets are served
                "--ready-file",
                str(ready),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=as_fds_3_and_4,
            pass_fds=(3, 4),
        )
    udp.close()
    tcp.close()
    try:
        deadline = time.monotonic() + 20
        while not (ready.exists() and ready.read_text().strip()):
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        assert ready.read_text().split() == ["127.0.0.1", str(port)]
        query = dns.message.make_query("www.bank.example", "A")
        assert dns.query.udp(query, "127.0.0.1", port=port, timeout=10).rcode() == 0
        assert dns.query.tcp(query, "127.0.0.1", port=port, timeout=10).answer
        assert stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log_path.read_text()
    assert f"socket activation: 127.0.0.1#{port}/udp 127.0.0.1#{port}/tcp" in text


def test_descriptors_for_another_process_are_not_taken():
    env = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a:b"}
    assert listen_fds(env) == []
    assert env == {}  # the variables are not passed on to children either
    assert listen_fds({}) == []


def test_notify_sends_the_state_to_notify_socket(tmp_path, monkeypatch: pytest.MonkeyPatch):
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(path)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert notify("READY=1")
        assert manager.recv(64) == b"READY=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not notify("READY=1")

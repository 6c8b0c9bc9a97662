"""`poisonproof serve --workers N`: N processes answering on one port (SO_REUSEPORT)."""

from __future__ import annotations

import os
import socket

import dns.message
import dns.rcode

from poisonproof.server.workers import worker_argv, worker_pids


def ask_from_fresh_port(port: int, qname: str, qtype: str) -> dns.message.Message:
    """A query from a new source port each time, so SO_REUSEPORT may pick any worker."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(dns.message.make_query(qname, qtype).to_wire(), ("127.0.0.1", port))
        return dns.message.from_wire(sock.recvfrom(4096)[0])


def test_two_workers_share_the_port_each_with_its_own_cache(
    start_resolver_process, world_thread, tmp_path
) -> None:
    server = start_resolver_process(
        "--workers",
        "2",
        *world_thread.serve_args(tmp_path),
        "--worker-cache",
        "private",
    )
    workers = worker_pids(server.proc.pid)
    assert len(workers) == 2
    before = sum(world_thread.query_counts().values())
    first = ask_from_fresh_port(server.port, "mail.bank.example.", "A")
    once = sum(world_thread.query_counts().values()) - before
    assert first.rcode() == dns.rcode.NOERROR and first.answer
    for _ in range(40):  # 40 source ports: both workers get some (2**-39 odds otherwise)
        reply = ask_from_fresh_port(server.port, "mail.bank.example.", "A")
        assert reply.answer[0].to_rdataset() == first.answer[0].to_rdataset()
    # the other worker resolved the name too: caches are per worker
    assert sum(world_thread.query_counts().values()) - before == 2 * once
    assert server.stop() == 0
    for pid in workers:
        assert not os.path.exists(f"/proc/{pid}")  # stopped and reaped by the parent


def test_worker_command_line_takes_the_chosen_ports_and_its_own_ready_file(tmp_path) -> None:
    argv = worker_argv(
        [
            "--workers",
            "4",
            "-l",
            "127.0.0.1:0",
            "--ready-file=x",
            "--worker-cache",
            "shared",
            "--root-hints",
            "h",
        ],
        [("127.0.0.1", 5300), ("::1", 5301)],
        tmp_path / "r0",
        tmp_path / "table",
    )
    args = argv[argv.index("serve") + 1 :]
    assert args == [
        "--root-hints",
        "h",
        "--listen",
        "127.0.0.1:5300",
        "--listen",
        "[::1]:5301",
        "--shared-cache",
        str(tmp_path / "table"),
        "--reuse-port",
        "--ready-file",
        str(tmp_path / "r0"),
    ]

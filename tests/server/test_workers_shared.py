"""`serve --workers N --worker-cache shared`: a name one worker resolved is answered by
every worker from the shared answer table, without asking upstream again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dns.rcode

from poisonproof.server.workers import worker_pids
from tests.server.test_workers import ask_from_fresh_port


def mapped_tables(pid: int) -> set[str]:
    """The answer-table files process `pid` has mapped (as /proc/PID/maps names them)."""
    lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return {line.split(None, 5)[5] for line in lines if "poisonproof-answers-" in line}


def test_a_name_one_worker_resolved_is_answered_by_the_other_from_the_table(
    start_resolver_process, world_thread, tmp_path
) -> None:
    server = start_resolver_process(
        "--workers",
        "2",
        "--worker-cache",
        "shared",
        *world_thread.serve_args(tmp_path),
    )
    workers = worker_pids(server.proc.pid)
    assert len(workers) == 2
    tables = [mapped_tables(pid) for pid in workers]
    assert len(tables[0]) == 1 and tables[0] == tables[1]  # one file, mapped by both
    path = next(iter(tables[0]))
    assert path.endswith(" (deleted)")  # removed once both had mapped it: nothing leaks
    before = sum(world_thread.query_counts().values())
    first = ask_from_fresh_port(server.port, "api.bank.example.", "A")
    assert first.rcode() == dns.rcode.NOERROR and first.answer
    once = sum(world_thread.query_counts().values()) - before
    assert once > 0
    for _ in range(40):  # 40 source ports: both workers get some (2**-39 odds otherwise)
        reply = ask_from_fresh_port(server.port, "API.bank.example.", "A")
        assert reply.rcode() == dns.rcode.NOERROR
        assert reply.answer[0].to_rdataset() == first.answer[0].to_rdataset()
        assert reply.question[0].name.to_text() == "API.bank.example."
    # the worker that did not resolve it answered from the table: no upstream query more
    assert sum(world_thread.query_counts().values()) - before == once
    assert server.stop() == 0
    for pid in workers:
        assert not os.path.exists(f"/proc/{pid}")


def test_a_shared_cache_file_that_is_not_a_table_stops_the_server(tmp_path) -> None:
    bogus = tmp_path / "not-a-table"
    bogus.write_bytes(b"x" * 4096)
    bogus.chmod(0o600)
    done = subprocess.run(
        [sys.executable, "-m", "poisonproof", "serve", "--shared-cache", str(bogus)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "not a shared answer table" in " ".join((done.stdout + done.stderr).split())
    assert bogus.read_bytes() == b"x" * 4096  # never written into

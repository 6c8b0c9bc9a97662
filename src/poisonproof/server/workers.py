"""`poisonproof serve --workers N`: N resolver processes sharing each listen port.

Owns: choosing the concrete port of every listen address once (so `:0` works), starting
N copies of the same `serve` command line with `--reuse-port` and those ports (SO_REUSEPORT:
the kernel spreads clients over the processes by address hash), writing the ready file
when every worker is ready, passing SIGTERM/SIGINT/SIGHUP/SIGUSR1 on to the workers, and
stopping them all when one of them dies.
With a shared cache it also makes the workers' answer table (`shared_answers`), hands
its path to every worker and removes the file once they have all mapped it (the memory
goes with the last worker, even if this process is killed).
Must never: answer a query itself or hold a listening socket while the workers run (a
socket in the SO_REUSEPORT group that nobody reads would swallow its share of queries).
Each worker has its own cache; the answer table is the only state they share.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from poisonproof.net.base import Address
from poisonproof.resolver import shared_answers

START_TIMEOUT = 30.0
"""Seconds the workers get to write their ready files."""
STOP_TIMEOUT = 10.0
"""Seconds between SIGTERM and SIGKILL when stopping the workers."""
_FORWARDED = (signal.SIGHUP, signal.SIGUSR1)
_DROPPED_OPTIONS = {
    "--workers": 1,
    "--listen": 1,
    "-l": 1,
    "--ready-file": 1,
    "--worker-cache": 1,
    "--shared-cache": 1,
}
"""Options of the parent's command line the workers get rewritten (name: values taken)."""


def concrete_ports(listen: list[Address]) -> list[Address]:
    """`listen` with each port 0 replaced by one that is free for UDP and TCP now."""
    chosen: list[Address] = []
    for host, port in listen:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        while port == 0:
            with socket.socket(family, socket.SOCK_DGRAM) as udp:
                udp.bind((host, 0))
                candidate = udp.getsockname()[1]
                with socket.socket(family, socket.SOCK_STREAM) as tcp:
                    try:
                        tcp.bind((host, candidate))
                    except OSError:
                        continue
                    port = candidate
        chosen.append((host, port))
    return chosen


def worker_argv(
    serve_args: list[str], listen: list[Address], ready_file: Path, shared: Path | None = None
) -> list[str]:
    """The command line of one worker: the parent's `serve` arguments, rewritten."""
    kept: list[str] = []
    skip = 0
    for arg in serve_args:
        if skip:
            skip -= 1
            continue
        name = arg.split("=", 1)[0]
        if name in _DROPPED_OPTIONS:
            skip = 0 if "=" in arg else _DROPPED_OPTIONS[name]
            continue
        kept.append(arg)
    for host, port in listen:
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        kept += ["--listen", shown]
    if shared is not None:
        kept += ["--shared-cache", str(shared)]
    return [
        sys.executable,
        "-m",
        "poisonproof",
        "serve",
        *kept,
        "--reuse-port",
        "--ready-file",
        str(ready_file),
    ]


def serve_args_from(argv: list[str] | None = None) -> list[str]:
    """The arguments after the `serve` command word (of this process's command line)."""
    argv = sys.argv if argv is None else argv
    return argv[argv.index("serve") + 1 :] if "serve" in argv else []


def shared_table(shared: bool) -> Path | None:
    """A new answer table file when `shared`; None (private caches, said why) if it fails."""
    if not shared:
        return None
    try:
        return shared_answers.create()
    except shared_answers.SharedTableError as error:
        print(f"{error}: each worker keeps a private cache", file=sys.stderr)
        return None


def run_workers(
    serve_args: list[str],
    workers: int,
    listen: list[Address],
    ready_file: Path | None,
    shared: bool = False,
) -> int:
    """Run `workers` copies of the resolver until SIGTERM/SIGINT; the exit status.

    With `shared`, the workers share one answer table (see `shared_answers`).
    """
    addresses = concrete_ports(listen)
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    children: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    previous.update({sig: signal.signal(sig, forward) for sig in _FORWARDED})
    with tempfile.TemporaryDirectory(prefix="poisonproof-workers-") as tmp:
        ready = [Path(tmp) / f"ready{i}" for i in range(workers)]
        table = shared_table(shared)
        try:
            for path in ready:
                argv = worker_argv(serve_args, addresses, path, table)
                children.append(subprocess.Popen(argv))
            deadline = time.monotonic() + START_TIMEOUT
            while not all(p.exists() and p.stat().st_size for p in ready):
                if stopping or any(c.poll() is not None for c in children):
                    return 1
                if time.monotonic() > deadline:
                    print(f"workers not ready after {START_TIMEOUT:.0f}s", file=sys.stderr)
                    return 1
                time.sleep(0.05)
            if table is not None:
                shared_answers.remove(table)  # every worker has mapped it
            if ready_file is not None:
                ready_file.write_text(ready[0].read_text())
            while not stopping:
                if any(c.poll() is not None for c in children):
                    print("a worker exited: stopping the others", file=sys.stderr)
                    return 1
                time.sleep(0.2)
            return 0
        finally:
            for child in children:
                if child.poll() is None:
                    child.terminate()
            for child in children:
                try:
                    child.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait(STOP_TIMEOUT)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if table is not None:
                shared_answers.remove(table)


def worker_pids(parent: int) -> list[int]:
    """Processes whose parent is `parent` (the workers of a running `--workers` server)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == parent:
                    found.append(int(entry.name))
    return found

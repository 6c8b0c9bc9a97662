"""Shared fixtures: the bundled lab zones, tool lookup, and a real `poisonproof auth` process."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from poisonproof.demo import ZONE_DIR

REQUIRE_TOOLS = os.environ.get("POISONPROOF_REQUIRE_TOOLS") == "1"


def require_tool(name: str) -> str:
    """The path of `name`; skip when absent, or fail in CI where every tool must be present."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian: see .ci/run)"
        if REQUIRE_TOOLS:
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on `host`."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


@pytest.fixture(scope="session")
def zone_dir() -> Path:
    return ZONE_DIR


class AuthProcess:
    """A `python -m poisonproof auth|serve` child process, stopped with SIGTERM."""

    def __init__(self, args: list[str], ready: Path, log: Path, command: str = "auth") -> None:
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "poisonproof", command, *args, "--ready-file", str(ready)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while not ready.exists() or not ready.read_text().strip():
            if self.proc.poll() is not None:
                raise RuntimeError(f"auth server exited: {log.read_text()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"auth server did not start: {log.read_text()}")
            time.sleep(0.05)
        host, port = ready.read_text().split()[:2]
        self.host, self.port = host, int(port)

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def start_auth(tmp_path: Path) -> Iterator:
    started: list[AuthProcess] = []

    def start(*args: str) -> AuthProcess:
        n = len(started)
        proc = AuthProcess(list(args), tmp_path / f"ready{n}", tmp_path / f"auth{n}.log")
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def start_resolver_process(tmp_path: Path) -> Iterator:
    """Start `poisonproof serve` on a free loopback port with extra arguments."""
    started: list[AuthProcess] = []

    def start(*args: str) -> AuthProcess:
        n = len(started)
        port = free_port()
        proc = AuthProcess(
            ["--listen", f"127.0.0.1:{port}", *args],
            tmp_path / f"resolver-ready{n}",
            tmp_path / f"resolver{n}.log",
            command="serve",
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


class WorldThread:
    """The lab world served from a background thread's event loop, on one high port."""

    def __init__(self) -> None:
        import asyncio
        import threading

        from poisonproof.lab.world import start_world
        from poisonproof.net.real import RealNetwork

        self.port = free_port("127.0.0.2")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(start_world(RealNetwork(), self.port), self._loop)
        self.running = future.result(30)

    def hints_file(self, directory: Path) -> Path:
        path = directory / "root.hints"
        path.write_text(self.running.root_hints_text())
        return path

    def serve_args(self, directory: Path) -> list[str]:
        """`poisonproof serve` options that make it iterate from this world (hints file
        written into `directory`)."""
        hints = str(self.hints_file(directory))
        return ["--root-hints", hints, "--upstream-port", str(self.port), "--query-localhost", "on"]

    def query_counts(self) -> dict[str, int]:
        return self.running.query_counts()

    def stop(self) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self.running.stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def world_thread() -> Iterator[WorldThread]:
    world = WorldThread()
    yield world
    world.stop()


@pytest.fixture
def bank_server(start_auth, zone_dir: Path) -> AuthProcess:
    """Our server for the lab TLD and the victim zone on a free loopback port."""
    port = free_port()
    return start_auth(
        "--zone",
        str(zone_dir / "example.zone"),
        "--zone",
        str(zone_dir / "bank.example.zone"),
        "--listen",
        f"127.0.0.1:{port}",
    )


def require_namespace_lab() -> None:
    """Skip (or, in CI, fail) when the network-namespace lab cannot be built here."""
    from poisonproof.lab.netns import LabNet

    ok, why = LabNet.available()
    if not ok:
        message = f"the namespace lab cannot be built here: {why}"
        if REQUIRE_TOOLS:
            pytest.fail(message)
        pytest.skip(message)

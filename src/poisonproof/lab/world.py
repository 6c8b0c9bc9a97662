"""The lab world: an offline DNS hierarchy of our authoritative servers on loopback.

Owns: the description of the world (which server, on which 127.0.0.x address, serves
which zone files from `poisonproof/data/world`), the root hints a resolver needs to
iterate through it, the deterministic list of questions comparison tests ask, starting
the world in-process (`start_world`), and running it as a detached background process
(`world_up` / `world_down`, the `poisonproof lab world up|down` commands) whose
whereabouts are kept in a state directory. A signed world (`world_up(signed=True)`) is
signed by `poisonproof.lab.signed_world` into the state directory before it is served.

Must never: bind or send outside 127.0.0.0/8 (every address is checked before anything
is bound), answer DNS itself (the `AuthServer`s do), kill a process it cannot identify
as a world it started, or follow a state directory owned by another user.

The layout (default address base 127.0.0.0, every server on the same port, 53 by default,
because resolvers follow referrals to port 53 only; 127.0.0.1 is left for clients and
resolvers, 127.0.0.53/54 are avoided because systemd-resolved lives there)::

    127.0.0.2  a.root-servers.lab.    .  lab.         127.0.0.20 ns1.bank.example.    bank.example.
    127.0.0.3  b.root-servers.lab.    .  lab.         127.0.0.21 ns2.bank.example.    bank.example.
    127.0.0.10 a.nic.com.             com.            127.0.0.30 ns1.mailhost.net.    mailhost.net.
    127.0.0.11 b.nic.com.             com.            127.0.0.31 ns1.shop.com.        shop.com.
    127.0.0.12 a.nic.net.             net.            127.0.0.32 ns1.eu.shop.com.     eu.shop.com.
    127.0.0.13 b.nic.net.             net.            127.0.0.33 ns1.news.org.        news.org.
    127.0.0.14 a.nic.org.             org.            127.0.0.34 ns1.cdn.net.         cdn.net.
    127.0.0.15 a.nic.example.         example.        127.0.0.35 ns2.cdn.net.         cdn.net.
    127.0.0.16 b.nic.example.         example.        127.0.0.66 ns.attacker.example.  (attacker)

(ns1.cdn.net and ns2.cdn.net also serve glueless.org, whose delegation from org. has no glue.)

Another address base (e.g. 127.77.0.0) moves every server and rewrites the addresses in
the zone files (glue, NS hosts) into a working directory, so two worlds can run at once.

Port 53: binding it needs root or CAP_NET_BIND_SERVICE. The unprivileged way is a private
user+network namespace, where you are root over a loopback of your own and nothing can
reach the host's port 53 (perhaps a system resolver)::

    unshare -rn sh -c 'ip link set lo up && poisonproof lab world up && exec "$SHELL"'

(`unshare -rn` = a new user namespace mapping you to root + a new network namespace;
its `lo` starts down, hence `ip link set lo up`.) Run the resolvers under test in that
same shell; leaving it ends the namespace and everything in it. See docs/lab-world.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import fcntl
import ipaddress
import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import dns.name

from poisonproof.auth.zones import ServedZone, load_zone
from poisonproof.lab.signed_world import Breakage, sign_world
from poisonproof.net.base import Network
from poisonproof.server.auth_server import AuthServer

log = logging.getLogger("poisonproof.lab.world")

WORLD_ZONE_DIR = Path(str(resources.files("poisonproof") / "data" / "world"))
"""The world's zone files, written for the default address base."""

DEFAULT_ADDRESS_BASE = "127.0.0.0"
DEFAULT_PORT = 53
LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
CLIENT_ADDRESS = ipaddress.IPv4Address("127.0.0.1")
"""Left free for clients and resolvers: no server of the world may take it."""

QUESTION_SEED = 2008
QUESTION_TYPES = ("A", "AAAA", "MX", "TXT", "NS", "SOA", "CNAME")
"""Asked of every name that exists somewhere in the world."""

ROOT_HINTS_TTL = 3600000

STATE_FILE = "state.json"
READY_FILE = "ready.json"
ERROR_FILE = "error.json"
ROOT_HINTS_FILE = "root.hints"
LOG_FILE = "world.log"
LOCK_FILE = "lock"
ZONES_SUBDIR = "zones"
SIGNED_SUBDIR = "signed"
SERVE_MODULE = "poisonproof.lab.world"

_DEFAULT_BASE = ipaddress.IPv4Address(DEFAULT_ADDRESS_BASE)
_ADDRESS_IN_ZONE = re.compile(r"(?<![\d.])127\.0\.0\.(\d{1,3})(?![\d.])")


@dataclass(frozen=True)
class ServerSpec:
    """One server of the layout: its offset from the address base and its zone files."""

    name: str
    """Its host name (absolute); the zones it serves publish this name's address."""
    host: int
    """Its address is the address base + `host` (127.0.0.<host> by default)."""
    zone_files: tuple[str, ...]
    """File names in `WORLD_ZONE_DIR`."""


LAYOUT: tuple[ServerSpec, ...] = (
    ServerSpec("a.root-servers.lab.", 2, ("root.zone", "lab.zone")),
    ServerSpec("b.root-servers.lab.", 3, ("root.zone", "lab.zone")),
    ServerSpec("a.nic.com.", 10, ("com.zone",)),
    ServerSpec("b.nic.com.", 11, ("com.zone",)),
    ServerSpec("a.nic.net.", 12, ("net.zone",)),
    ServerSpec("b.nic.net.", 13, ("net.zone",)),
    ServerSpec("a.nic.org.", 14, ("org.zone",)),
    ServerSpec("a.nic.example.", 15, ("example.zone",)),
    ServerSpec("b.nic.example.", 16, ("example.zone",)),
    ServerSpec("ns1.bank.example.", 20, ("bank.example.zone",)),
    ServerSpec("ns2.bank.example.", 21, ("bank.example.zone",)),
    ServerSpec("ns1.mailhost.net.", 30, ("mailhost.net.zone",)),
    ServerSpec("ns1.shop.com.", 31, ("shop.com.zone",)),
    ServerSpec("ns1.eu.shop.com.", 32, ("eu.shop.com.zone",)),
    ServerSpec("ns1.news.org.", 33, ("news.org.zone",)),
    ServerSpec("ns1.cdn.net.", 34, ("cdn.net.zone", "glueless.org.zone")),
    ServerSpec("ns2.cdn.net.", 35, ("cdn.net.zone", "glueless.org.zone")),
    ServerSpec("ns.attacker.example.", 66, ("attacker.example.zone",)),
)
"""Who serves what. The addresses in the zone files must agree (a test checks)."""

ROOT_ZONE_FILE = "root.zone"
VICTIM_ZONE = "bank.example."
ATTACKER_ZONE = "attacker.example."


class WorldError(Exception):
    """The world cannot be started, found or stopped; the message says what to do."""


# -- the description -------------------------------------------------------------------


@dataclass(frozen=True)
class WorldServer:
    """A server of a world: its name, its address, and the zone files it serves."""

    name: str
    address: str
    zone_files: tuple[str, ...]


@dataclass(frozen=True)
class World:
    """The world's layout placed at an address base. Build it with `lab_world()`."""

    address_base: str
    servers: tuple[WorldServer, ...]
    zone_dir: Path = WORLD_ZONE_DIR

    @property
    def relocated(self) -> bool:
        """True when the addresses differ from those written in the zone files."""
        return ipaddress.IPv4Address(self.address_base) != _DEFAULT_BASE

    @property
    def root_servers(self) -> tuple[WorldServer, ...]:
        return tuple(s for s in self.servers if ROOT_ZONE_FILE in s.zone_files)

    @property
    def zone_files(self) -> tuple[str, ...]:
        """Every zone file of the world once, in layout order."""
        return tuple(dict.fromkeys(f for s in self.servers for f in s.zone_files))

    def server(self, name: str) -> WorldServer:
        wanted = dns.name.from_text(name)
        for server in self.servers:
            if dns.name.from_text(server.name) == wanted:
                return server
        raise KeyError(name)

    def address_map(self) -> dict[str, str]:
        """Addresses as written in the zone files -> this world's addresses."""
        return {
            str(_DEFAULT_BASE + spec.host): server.address
            for spec, server in zip(LAYOUT, self.servers, strict=True)
        }

    def zone_text(self, file_name: str) -> str:
        """A zone file's text with its server addresses moved to this world's base."""
        text = (self.zone_dir / file_name).read_text(encoding="utf-8")
        if not self.relocated:
            return text
        mapping = self.address_map()

        def move(match: re.Match[str]) -> str:
            return mapping.get(match[0], match[0])

        return _ADDRESS_IN_ZONE.sub(move, text)

    def write_zones(self, directory: Path) -> Path:
        """Write every zone file, relocated, into `directory`; return it."""
        directory.mkdir(parents=True, exist_ok=True)
        for file_name in self.zone_files:
            (directory / file_name).write_text(self.zone_text(file_name), encoding="utf-8")
        return directory

    def load_zones(self) -> dict[str, ServedZone]:
        """Every zone of the world as written in the package (default addresses)."""
        return {f: load_zone(self.zone_dir / f) for f in self.zone_files}

    def root_hints_text(self) -> str:
        """Root hints in zone-file format (Unbound `root-hints:`, Knot `hints.root_file`)."""
        lines = [
            f"; Root hints for the poisonproof lab world (address base {self.address_base}).",
            "; Unbound: root-hints: FILE   Knot Resolver: hints.root_file('FILE')",
            '; BIND: zone "." { type hint; file "FILE"; };',
        ]
        width = max(len(s.name) for s in self.root_servers)
        for server in self.root_servers:
            lines.append(f"{'.':<{width}}  {ROOT_HINTS_TTL}  NS  {server.name}")
        for server in self.root_servers:
            lines.append(f"{server.name:<{width}}  {ROOT_HINTS_TTL}  A   {server.address}")
        return "\n".join(lines) + "\n"

    def questions(self, seed: int = QUESTION_SEED) -> list[tuple[str, str]]:
        """>= 500 distinct (name, type) questions for comparing resolvers; deterministic.

        Every name that exists in some zone (owners, glue, empty non-terminals) with each
        of `QUESTION_TYPES` (answers, CNAME chains, NODATA); names a wildcard synthesizes;
        and seeded random names that exist nowhere (NXDOMAIN under each zone's apex, under
        ordinary names, and in TLDs that do not exist). Names are lower-case and absolute.
        """
        zones = self.load_zones()
        existing: set[dns.name.Name] = set()
        wildcard_parents: set[dns.name.Name] = set()
        for served in zones.values():
            for name in served.names:
                if name.labels and name.labels[0] == b"*":
                    wildcard_parents.add(name.parent())
                else:
                    existing.add(name)
        ordered = sorted(existing)
        pairs: list[tuple[str, str]] = [
            (name.to_text(), qtype) for name in ordered for qtype in QUESTION_TYPES
        ]
        rng = random.Random(seed)

        def fresh(prefix: str, parent: dns.name.Name) -> dns.name.Name:
            while True:
                label = f"{prefix}-{rng.getrandbits(32):08x}".encode()
                name = dns.name.Name((label, *parent.labels))
                if name not in existing:
                    return name

        for parent in sorted(wildcard_parents):
            for _ in range(3):
                name = fresh("w", parent)
                pairs += [(name.to_text(), t) for t in ("A", "AAAA", "TXT", "MX")]
        origins = sorted(served.origin for served in zones.values())
        for origin in origins:
            for _ in range(6):
                pairs.append((fresh("nx", origin).to_text(), rng.choice(("A", "AAAA", "MX"))))
        ordinary = [n for n in ordered if n not in wildcard_parents and n not in origins]
        for parent in rng.sample(ordinary, min(40, len(ordinary))):
            pairs.append((fresh("nx", parent).to_text(), rng.choice(("A", "TXT"))))
        return list(dict.fromkeys(pairs))


def lab_world(address_base: str = DEFAULT_ADDRESS_BASE) -> World:
    """The lab world at `address_base`; ValueError if any address leaves 127.0.0.0/8."""
    try:
        base = ipaddress.IPv4Address(address_base)
    except ValueError:
        raise ValueError(f"address base {address_base!r} is not an IPv4 address") from None
    servers = []
    for spec in LAYOUT:
        try:
            address = base + spec.host
        except ipaddress.AddressValueError:
            raise ValueError(f"address base {address_base} + {spec.host} overflows") from None
        if address not in LOOPBACK:
            raise ValueError(
                f"address base {address_base} puts {spec.name} on {address}, outside "
                f"{LOOPBACK}: the lab world never binds outside loopback"
            )
        if address == CLIENT_ADDRESS:
            raise ValueError(
                f"address base {address_base} puts {spec.name} on {CLIENT_ADDRESS}, which is "
                "left for clients and resolvers"
            )
        servers.append(WorldServer(spec.name, str(address), spec.zone_files))
    return World(address_base=str(base), servers=tuple(servers))


# -- running it in-process -------------------------------------------------------------


@dataclass(frozen=True)
class ServerInfo:
    """A started server: where it listens and what it serves (origin -> file)."""

    name: str
    address: str
    port: int
    zones: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "port": self.port,
            "zones": [{"origin": o, "file": f} for o, f in self.zones.items()],
        }


@dataclass
class RunningWorld:
    """A started world. `stop()` closes every listener (and removes temporary zones)."""

    world: World
    port: int
    servers: list[ServerInfo]
    auth_servers: list[AuthServer]
    """The `AuthServer`s, in `servers` order (their `engine.stats` count queries)."""
    _tempdir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def root_addresses(self) -> list[tuple[str, int]]:
        return [(s.address, self.port) for s in self.world.root_servers]

    def root_hints_text(self) -> str:
        return self.world.root_hints_text()

    def query_counts(self) -> dict[str, int]:
        """Queries each server has answered, by address."""
        return {
            info.address: server.engine.stats["queries"]
            for info, server in zip(self.servers, self.auth_servers, strict=True)
        }

    async def reload(self) -> bool:
        """Reload every server's zone files; a broken file keeps that server's old zones."""
        results = [await server.reload() for server in self.auth_servers]
        return all(results)

    async def stop(self) -> None:
        for server in self.auth_servers:
            await server.stop(quiet=True)
        self.auth_servers.clear()
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None
        log.info("world stopped")


async def start_world(
    network: Network,
    port: int = DEFAULT_PORT,
    address_base: str = DEFAULT_ADDRESS_BASE,
    *,
    zone_workdir: Path | None = None,
    zone_dir: Path | None = None,
) -> RunningWorld:
    """Start one `AuthServer` per address of the world, all on `port` (UDP and TCP).

    A relocated world (another address base) writes its zone files into `zone_workdir`,
    or a temporary directory removed by `stop()`. `zone_dir` serves the world's zone files
    from there instead, as they are (already written for `address_base`): a signed world
    (`SignedWorld.zone_dir`). If any server cannot bind, those already started are
    stopped and the `OSError` (errno kept) propagates.
    """
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is not in 1..65535 (every server needs the same port)")
    world = lab_world(address_base)
    tempdir: tempfile.TemporaryDirectory[str] | None = None
    if zone_dir is None:
        zone_dir = world.zone_dir
    elif not all((zone_dir / f).is_file() for f in world.zone_files):
        raise ValueError(f"{zone_dir} lacks some of the world's zone files")
    if world.relocated and zone_dir == world.zone_dir:
        if zone_workdir is None:
            tempdir = tempfile.TemporaryDirectory(prefix="poisonproof-world-zones-")
            zone_workdir = Path(tempdir.name)
        zone_dir = world.write_zones(zone_workdir)
    started: list[AuthServer] = []
    infos: list[ServerInfo] = []
    try:
        for server in world.servers:
            if ipaddress.IPv4Address(server.address) not in LOOPBACK:  # lab_world checked
                raise ValueError(f"{server.address} is outside {LOOPBACK}; refusing to bind")
            files = [str(zone_dir / f) for f in server.zone_files]
            auth = AuthServer(network, files, [(server.address, port)])
            await auth.start()
            started.append(auth)
            zones = {str(z.origin): z.source for z in auth.engine.zones}
            infos.append(ServerInfo(server.name, server.address, port, zones))
    except BaseException:
        for auth in started:
            await auth.stop(quiet=True)
        if tempdir is not None:
            tempdir.cleanup()
        raise
    log.info("world started: %d servers on port %d", len(started), port)
    return RunningWorld(world, port, infos, started, tempdir)


# -- the background process: up / down --------------------------------------------------


def default_state_dir() -> Path:
    """`$XDG_RUNTIME_DIR/poisonproof-world`, else `/tmp/poisonproof-world-$UID`."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "poisonproof-world"
    return Path("/tmp") / f"poisonproof-world-{os.getuid()}"


def _errno_of(error: BaseException) -> int | None:
    """The first errno along the cause/context chain.

    uvloop's `create_datagram_endpoint` raises `OSError("could not bind ...")` without an
    errno, the real `PermissionError` only as its `__cause__`; `AuthServer.start` re-raises
    that errno-less error with its address, so the errno is found a few links down.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            return current.errno
        current = current.__cause__ or current.__context__
    return None


def bind_failure_message(error: OSError, port: int) -> str:
    """What went wrong binding the world, and what to do about it."""
    code = _errno_of(error)
    what = error.strerror or str(error)
    if code is not None and what.endswith(": None"):  # see _errno_of
        what = f"{what.removesuffix(': None')}: {os.strerror(code)}"
    if code in (errno.EACCES, errno.EPERM):
        return (
            f"{what}. Port {port} is a privileged port (< 1024): binding it needs root or "
            "CAP_NET_BIND_SERVICE. Without either, run the world (and the resolvers that "
            "use it) inside a private user+network namespace, made by `unshare -rn`, after "
            "`ip link set lo up` in it:\n"
            "  unshare -rn sh -c 'ip link set lo up && poisonproof lab world up "
            '&& exec "$SHELL"\'\n'
            "or pick a port >= 1024 with --port (resolvers only follow referrals to port "
            "53, though)."
        )
    if code == errno.EADDRINUSE:
        return (
            f"{what}. Something already listens there: another world (`poisonproof lab "
            "world down`, or another --state-dir), or a DNS server bound to 0.0.0.0 on that "
            "port (`ss -lunp`). A private namespace (`unshare -rn`) avoids both."
        )
    if code == errno.EADDRNOTAVAIL:
        return (
            f"{what}. The address is not on the loopback interface. Linux routes all of "
            "127.0.0.0/8 to lo once it is up (`ip link set lo up`); other systems need "
            "aliases (macOS: `sudo ifconfig lo0 alias 127.0.0.2 up`, one per server)."
        )
    return what


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: readers never see half a file."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _prepare_state_dir(state_dir: Path) -> Path:
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise WorldError(f"cannot create state directory {state_dir}: {error}") from None
    info = state_dir.lstat()
    if state_dir.is_symlink() or not state_dir.is_dir():
        raise WorldError(f"state directory {state_dir} is not a directory (or is a symlink)")
    if info.st_uid != os.getuid():
        raise WorldError(
            f"state directory {state_dir} belongs to uid {info.st_uid}, not to you; "
            "pass --state-dir"
        )
    return state_dir


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """One `up`/`down` at a time per state directory."""
    with (state_dir / LOCK_FILE).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as dead; our own child is reaped)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(0)
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _is_world_process(pid: int) -> bool:
    """True when `pid` runs `python -m poisonproof.lab.world serve` (not a reused pid)."""
    if not _alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc to check against: trust the pid
    return SERVE_MODULE.encode() in argv and b"serve" in argv


def read_state(state_dir: Path | None = None) -> dict[str, Any] | None:
    """The state of a running world in `state_dir`, or None when none runs there."""
    state_dir = state_dir or default_state_dir()
    state = _read_json(state_dir / STATE_FILE)
    if state is None or not isinstance(state.get("pid"), int):
        return None
    return state if _is_world_process(state["pid"]) else None


def _remove_state(state_dir: Path, *, keep_log: bool = False) -> None:
    for name in (STATE_FILE, READY_FILE, ERROR_FILE, ROOT_HINTS_FILE):
        with contextlib.suppress(FileNotFoundError):
            (state_dir / name).unlink()
    shutil.rmtree(state_dir / ZONES_SUBDIR, ignore_errors=True)
    shutil.rmtree(state_dir / SIGNED_SUBDIR, ignore_errors=True)
    if not keep_log:
        with contextlib.suppress(FileNotFoundError):
            (state_dir / LOG_FILE).unlink()


def _stop_pid(pid: int, timeout: float) -> bool:
    """SIGTERM, wait up to `timeout`, then SIGKILL; True if it stopped on SIGTERM."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            kill_deadline = time.monotonic() + 5
            while _alive(pid) and time.monotonic() < kill_deadline:
                time.sleep(0.02)
            return False
        time.sleep(0.02)
    return True


def _log_tail(state_dir: Path, lines: int = 15) -> str:
    try:
        text = (state_dir / LOG_FILE).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class UpResult:
    """What `world_up` found or started; `state` is the state file's content."""

    state: dict[str, Any]
    already_up: bool


def world_up(
    state_dir: Path | None = None,
    port: int = DEFAULT_PORT,
    address_base: str = DEFAULT_ADDRESS_BASE,
    *,
    timeout: float = 20.0,
    signed: bool = False,
    unsigned: Iterable[str] = (),
    broken: Mapping[str, Breakage] | None = None,
) -> UpResult:
    """Start the world as a detached process unless one already runs from `state_dir`.

    Writes `state.json` (pid, port, servers with addresses and zone files, root hints
    path, log path) and `root.hints` into the state directory. Raises `WorldError` with
    an actionable message when the world cannot start (EACCES on port 53, ...).

    `signed` (implied by `unsigned` or `broken`) signs the world into `<state dir>/signed`
    first (`poisonproof.lab.signed_world.sign_world`, which says what `unsigned` and
    `broken` do) and serves that; the state then names the root trust anchor files
    (`trust_anchor`: zone-file DS, `trust_anchor_bind`: `trust-anchors { };` for delv)
    and, under `dnssec`, each zone's algorithm, denial and expected validation outcome.
    """
    if not 0 < port < 65536:
        raise WorldError(f"port {port} is not in 1..65535")
    unsigned = tuple(unsigned)
    broken = dict(broken or {})
    signed = signed or bool(unsigned) or bool(broken)
    try:
        world = lab_world(address_base)
    except ValueError as error:
        raise WorldError(str(error)) from None
    state_dir = _prepare_state_dir((state_dir or default_state_dir()).absolute())
    with _locked(state_dir):
        running = read_state(state_dir)
        if running is not None:
            return UpResult(running, already_up=True)
        _remove_state(state_dir)
        serve_args = [
            sys.executable,
            "-m",
            SERVE_MODULE,
            "serve",
            "--state-dir",
            str(state_dir),
            "--port",
            str(port),
            "--address-base",
            world.address_base,
        ]
        dnssec: dict[str, Any] = {"signed": False, "trust_anchor": None}
        if signed:
            try:
                signed_world = sign_world(
                    world, state_dir / SIGNED_SUBDIR, unsigned=unsigned, broken=broken
                )
            except ValueError as error:
                _remove_state(state_dir)
                raise WorldError(str(error)) from None
            serve_args += ["--zone-dir", str(signed_world.zone_dir)]
            dnssec = {
                "signed": True,
                "trust_anchor": str(signed_world.trust_anchor),
                "trust_anchor_bind": str(signed_world.trust_anchor_bind),
                "dnssec": signed_world.to_json(),
            }
        with (state_dir / LOG_FILE).open("ab") as log_file:
            proc = subprocess.Popen(
                serve_args,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the shell that ran `up`, and its ^C
                close_fds=True,
            )
        ready = _wait_ready(proc, state_dir, timeout)
        hints = state_dir / ROOT_HINTS_FILE
        hints.write_text(world.root_hints_text(), encoding="utf-8")
        state = {
            "pid": proc.pid,
            "port": port,
            "address_base": world.address_base,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "state_dir": str(state_dir),
            "state_file": str(state_dir / STATE_FILE),
            "root_hints": str(hints),
            "log": str(state_dir / LOG_FILE),
            "root_servers": [s.address for s in world.root_servers],
            **dnssec,
            "servers": ready["servers"],
        }
        _write_json(state_dir / STATE_FILE, state)
        with contextlib.suppress(FileNotFoundError):
            (state_dir / READY_FILE).unlink()
        return UpResult(state, already_up=False)


def _wait_ready(proc: subprocess.Popen[bytes], state_dir: Path, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        ready = _read_json(state_dir / READY_FILE)
        if ready is not None:
            return ready
        failure = _read_json(state_dir / ERROR_FILE)
        if failure is not None or proc.poll() is not None:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            _remove_state(state_dir, keep_log=True)
            if failure is not None:
                raise WorldError(f"the world did not start: {failure.get('message')}")
            raise WorldError(
                f"the world process exited with {proc.returncode} before serving; "
                f"its log ({state_dir / LOG_FILE}):\n{_log_tail(state_dir)}"
            )
        if time.monotonic() > deadline:
            _stop_pid(proc.pid, 5)
            proc.wait()
            _remove_state(state_dir, keep_log=True)
            raise WorldError(
                f"the world did not start serving within {timeout:g}s; its log "
                f"({state_dir / LOG_FILE}):\n{_log_tail(state_dir)}"
            )
        time.sleep(0.03)


@dataclass(frozen=True)
class DownResult:
    """What `world_down` did: `was_up` False when there was nothing to stop."""

    was_up: bool
    pid: int | None
    message: str


def world_down(state_dir: Path | None = None, *, timeout: float = 10.0) -> DownResult:
    """Stop the world recorded in `state_dir` (SIGTERM, then SIGKILL) and remove its state."""
    state_dir = (state_dir or default_state_dir()).absolute()
    if not (state_dir / STATE_FILE).exists():
        return DownResult(False, None, f"the lab world is not up (no {STATE_FILE} in {state_dir})")
    _prepare_state_dir(state_dir)
    with _locked(state_dir):
        state = _read_json(state_dir / STATE_FILE) or {}
        pid = state.get("pid")
        if not isinstance(pid, int) or not _is_world_process(pid):
            _remove_state(state_dir)
            return DownResult(
                False,
                pid if isinstance(pid, int) else None,
                f"the lab world is not up (stale state in {state_dir} removed)",
            )
        clean = _stop_pid(pid, timeout)
        _remove_state(state_dir)
    with contextlib.suppress(OSError):
        (state_dir / LOCK_FILE).unlink()
        state_dir.rmdir()  # only when empty: a --state-dir may hold other files
    how = "stopped" if clean else f"killed (no exit {timeout:g}s after SIGTERM)"
    return DownResult(True, pid, f"lab world (pid {pid}) {how}; state removed from {state_dir}")


# -- `python -m poisonproof.lab.world serve`: the detached process ----------------------


async def _serve(
    state_dir: Path, port: int, address_base: str, zone_dir: Path | None = None
) -> int:
    from poisonproof.net.real import RealNetwork

    zone_workdir = state_dir / ZONES_SUBDIR
    try:
        running = await start_world(
            RealNetwork(), port, address_base, zone_workdir=zone_workdir, zone_dir=zone_dir
        )
    except OSError as error:
        message = bind_failure_message(error, port)
        log.error("cannot start the world: %s", message)
        _write_json(state_dir / ERROR_FILE, {"errno": _errno_of(error), "message": message})
        return 1
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    reloads: set[asyncio.Task[bool]] = set()

    def reload() -> None:  # SIGHUP: edit the zone files, then `kill -HUP PID`
        task = asyncio.create_task(running.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    try:
        _write_json(
            state_dir / READY_FILE,
            {"pid": os.getpid(), "servers": [s.to_json() for s in running.servers]},
        )
        await stop.wait()
    finally:
        await running.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the detached world process (`up` starts it; use that instead)."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {SERVE_MODULE}", description="Serve the lab world until SIGTERM."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the world in the foreground")
    serve.add_argument("--state-dir", type=Path, required=True)
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument("--address-base", default=DEFAULT_ADDRESS_BASE)
    serve.add_argument(
        "--zone-dir", type=Path, default=None, help="serve these zone files (a signed world)"
    )
    serve.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)

    from poisonproof.logsetup import configure
    from poisonproof.net.real import run

    configure(args.verbose)
    try:
        return run(_serve(args.state_dir, args.port, args.address_base, args.zone_dir))
    except ValueError as error:
        log.error("%s", error)
        _write_json(args.state_dir / ERROR_FILE, {"errno": None, "message": str(error)})
        return 2


if __name__ == "__main__":
    sys.exit(main())

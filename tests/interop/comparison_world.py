"""Three recursive resolvers asked the same questions about the lab world; runs INSIDE a
fresh network namespace.

Usage (what tests/interop/test_resolver_comparison.py runs):

    unshare -rn -- python tests/interop/comparison_world.py --workdir DIR \
        --unbound /usr/sbin/unbound --kresd /usr/sbin/kresd --ip /usr/sbin/ip \
        [--unbound-checkconf PATH] [--limit N] [--parallel N]

Inside the namespace it brings `lo` up, starts the lab world (`poisonproof.lab.world`,
every 127.0.0.x server on port 53, in a child process of its own) and three recursive
resolvers on 127.0.0.1, each given only the world's root hints:

  ours     python -m poisonproof serve --root-hints HINTS --query-localhost on
  unbound  /usr/sbin/unbound -d, iterator only, `root-hints:`, `do-not-query-localhost: no`
  knot     /usr/sbin/kresd -n, `hints.root_file(HINTS)`, no trust anchor, ALLOW_LOCAL

then asks each of them every question of `lab_world().questions()` (RD=1, UDP, TCP when
truncated, a few at a time) and prints one JSON object on stdout: per question each
resolver's rcode, flags, extended errors, answer and authority records (with TTLs),
plus the logs of the world and the resolvers. Judging the replies is the test's
business, not this script's.

Everything it starts is stopped before it exits (SIGTERM, then SIGKILL); each child also
gets SIGKILL if this helper dies (PR_SET_PDEATHSIG), and the namespace dies with it.

Must never run in the host's network namespace: it refuses unless `lo` is the only
interface (a namespace made by `unshare -n`), so port 53 and all traffic stay private.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from poisonproof.lab.world import lab_world

HOST = "127.0.0.1"
PORTS = {"ours": 5301, "unbound": 5302, "knot": 5303}
RESOLVERS = tuple(PORTS)
WORLD_PORT = 53  # resolvers follow referrals to port 53 only
PARALLEL = 8  # questions in flight at once (each asked of all three resolvers)
QUERY_TIMEOUT = 6.0  # seconds for one question (resolvers iterate from the root)
CACHE_MAX_TTL = 86400  # ours and Unbound cap TTLs at one day; Knot's default is six

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL when this helper dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _check_private_namespace() -> None:
    interfaces = sorted(name for _, name in socket.if_nameindex())  # this process's netns
    if interfaces != ["lo"]:
        sys.exit(
            f"refusing to run: interfaces {interfaces} - this helper must run in a fresh "
            "network namespace (unshare -rn), never in the host's"
        )


# -- configuration of the third parties ------------------------------------------------


def unbound_config(
    workdir: Path,
    hints: Path,
    *,
    port: int | None = None,
    modules: str = "iterator",
    extra: str = "",
) -> str:
    """Unbound for the lab world; `modules`/`extra` add validation (the DNSSEC harness)."""
    return f"""\
server:
    verbosity: 1
    interface: {HOST}
    port: {port if port is not None else PORTS["unbound"]}
    do-ip4: yes
    do-ip6: no
    prefer-ip6: no
    do-udp: yes
    do-tcp: yes
    do-daemonize: no
    num-threads: 1
    so-reuseport: no
    outgoing-range: 256
    num-queries-per-thread: 128
    username: ""
    chroot: ""
    directory: "{workdir}"
    pidfile: "{workdir}/unbound.pid"
    use-syslog: no
    logfile: ""
    log-time-ascii: yes
    access-control: 127.0.0.0/8 allow
    root-hints: "{hints}"
    do-not-query-localhost: no
    module-config: "{modules}"
{extra}    harden-referral-path: no
    qname-minimisation: yes
    minimal-responses: yes
    prefetch: no
    cache-max-ttl: {CACHE_MAX_TTL}

remote-control:
    control-enable: no
"""


def knot_config(rundir: Path, hints: Path) -> str:
    return f"""\
-- Knot Resolver 5.6, generated for the lab world comparison.
log_target('stderr')
log_level('notice')
net.ipv6 = false
net.listen('{HOST}', {PORTS["knot"]}, {{ kind = 'dns' }})
-- the hints module feeds `hints.root_file` into the iterator's root zone cut
modules = {{ 'hints > iterate' }}
hints.root_file('{hints}')
-- the world is unsigned: no root trust anchor, no validation
trust_anchors.remove('.')
-- the world's servers live on 127.0.0.x, which kresd refuses to ask unless ALLOW_LOCAL
option('ALLOW_LOCAL', true)
cache.open(50 * MB, 'lmdb://{rundir}/cache')
cache.max_ttl({CACHE_MAX_TTL})
"""


# -- processes ---------------------------------------------------------------------------


class Child:
    """A child process with its log; `stop()` SIGTERMs, then SIGKILLs."""

    def __init__(self, name: str, argv: list[str], log: Path, **kwargs: Any) -> None:
        self.name = name
        self.log_path = log
        with log.open("wb") as log_file:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
                **kwargs,
            )

    def log(self, limit: int = 20_000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-limit:]

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def wait_until(child: Child, ready: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        child.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{child.name}: {what} not within {timeout:g}s:\n{child.log()}")
        time.sleep(0.05)


def answers_on(port: int) -> Callable[[], bool]:
    """True once something answers DNS on HOST#port (a question about the lab world's
    root zone: every resolver has to reach the world to answer it)."""

    def probe() -> bool:
        query = dns.message.make_query(".", "SOA")
        try:
            reply = dns.query.udp(query, HOST, timeout=1, port=port)
        except (dns.exception.Timeout, OSError):
            return False
        return reply.rcode() == dns.rcode.NOERROR and bool(reply.answer)

    return probe


# -- asking ------------------------------------------------------------------------------


def _records(section: list[Any]) -> list[list[Any]]:
    return [
        [rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype), rrset.ttl, rdata.to_text()]
        for rrset in section
        for rdata in rrset
    ]


async def ask(port: int, qname: str, qtype: str) -> dict[str, Any]:
    query = dns.message.make_query(qname, qtype, use_edns=0, payload=1232)  # RD set
    started = time.monotonic()
    result: dict[str, Any] = {}
    try:
        reply = await dns.asyncquery.udp(query, HOST, timeout=QUERY_TIMEOUT, port=port)
        if reply.flags & dns.flags.TC:
            result["tcp"] = True
            reply = await dns.asyncquery.tcp(query, HOST, timeout=QUERY_TIMEOUT, port=port)
    except dns.exception.Timeout:
        result.update(rcode="TIMEOUT", answer=[], authority=[], flags=[])
    except (OSError, dns.exception.DNSException) as error:
        result.update(rcode=f"ERROR {error!r}", answer=[], authority=[], flags=[])
    else:
        result.update(
            rcode=dns.rcode.to_text(reply.rcode()),
            flags=dns.flags.to_text(reply.flags).split(),
            answer=_records(reply.answer),
            authority=_records(reply.authority),
            ede=[f"{e.code}: {e.text or ''}" for e in reply.extended_errors()],
        )
    result["ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


async def ask_all(questions: list[tuple[str, str]], parallel: int) -> list[dict[str, Any]]:
    """Every question of every resolver, `parallel` questions at a time, in list order.

    A question goes to the three resolvers at the same moment, so their caches age
    alike and the TTLs they answer with stay comparable.
    """
    results: list[dict[str, Any]] = [{"qname": qname, "qtype": qtype} for qname, qtype in questions]
    limit = asyncio.Semaphore(parallel)

    async def one(index: int) -> None:
        qname, qtype = questions[index]
        async with limit:
            replies = await asyncio.gather(*(ask(PORTS[name], qname, qtype) for name in RESOLVERS))
        results[index].update(zip(RESOLVERS, replies, strict=True))

    await asyncio.gather(*(one(index) for index in range(len(questions))))
    return results


# -- the run -----------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir).absolute()
    world = lab_world()
    questions = world.questions()
    if args.limit:
        questions = questions[: args.limit]
    hints = workdir / "root.hints"
    hints.write_text(world.root_hints_text(), encoding="utf-8")

    unbound_conf = workdir / "unbound.conf"
    unbound_conf.write_text(unbound_config(workdir, hints), encoding="utf-8")
    if args.unbound_checkconf:
        checked = subprocess.run(
            [args.unbound_checkconf, str(unbound_conf)], capture_output=True, text=True, timeout=10
        )
        if checked.returncode != 0:
            raise RuntimeError(f"unbound-checkconf: {checked.stdout}{checked.stderr}")
    knot_dir = workdir / "kresd"
    knot_dir.mkdir(exist_ok=True)
    knot_conf = knot_dir / "kresd.conf"
    knot_conf.write_text(knot_config(knot_dir, hints), encoding="utf-8")

    state_dir = workdir / "world"
    state_dir.mkdir(mode=0o700, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "SYSTEMD_INSTANCE"}
    children: list[Child] = []
    result: dict[str, Any] = {"questions": len(questions)}
    started = time.monotonic()  # resolvers cache from their first answer on
    try:
        world_proc = Child(
            "world",
            [
                sys.executable,
                "-m",
                "poisonproof.lab.world",
                "serve",
                "--state-dir",
                str(state_dir),
                "--port",
                str(WORLD_PORT),
            ],  # fmt: skip
            workdir / "world.log",
        )
        children.append(world_proc)
        wait_until(world_proc, (state_dir / "ready.json").exists, "the world serving")

        ready = workdir / "ours.ready"
        ours = Child(
            "ours",
            [
                sys.executable,
                "-m",
                "poisonproof",
                "serve",
                "--listen",
                f"{HOST}:{PORTS['ours']}",
                "--root-hints",
                str(hints),
                "--query-localhost",
                "on",
                "--ready-file",
                str(ready),
            ],  # fmt: skip
            workdir / "ours.log",
        )
        children.append(ours)
        unbound = Child(
            "unbound", [args.unbound, "-d", "-c", str(unbound_conf)], workdir / "unbound.log"
        )
        children.append(unbound)
        knot = Child(
            "knot",
            [args.kresd, "-n", "-c", str(knot_conf), str(knot_dir)],
            workdir / "kresd.log",
            env=env,
            cwd=knot_dir,
        )
        children.append(knot)
        wait_until(ours, lambda: ready.exists() and bool(ready.read_text().strip()), "ready file")
        for child in (ours, unbound, knot):
            wait_until(child, answers_on(PORTS[child.name]), "answering `. SOA`")

        asked = time.monotonic()
        result["results"] = asyncio.run(ask_all(questions, args.parallel))
        result["seconds"] = round(time.monotonic() - asked, 2)
        result["cache_seconds"] = round(time.monotonic() - started, 2)
        for child in children:
            child.check_alive()
    finally:
        result["exit"] = {}
        for child in reversed(children):
            result["exit"][child.name] = child.stop()
        result["logs"] = {child.name: child.log() for child in children}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--unbound", default="unbound")
    parser.add_argument("--unbound-checkconf", default="")
    parser.add_argument("--kresd", default="kresd")
    parser.add_argument("--ip", default="ip")
    parser.add_argument("--limit", type=int, default=0, help="ask only the first N questions")
    parser.add_argument("--parallel", type=int, default=PARALLEL, help="questions in flight")
    args = parser.parse_args()

    _check_private_namespace()
    subprocess.run([args.ip, "link", "set", "lo", "up"], check=True, timeout=10)
    with contextlib.suppress(BrokenPipeError):
        json.dump(run(args), sys.stdout)
        sys.stdout.write("\n")


if __name__ == "__main__":
    main()

"""Benchmark: our recursive resolver beside Unbound, both answering cached names, via dnsperf.

Owns: re-running itself inside a private user+network+PID namespace (`unshare -rnpf`), where
the lab world (`poisonproof.lab.world.start_world`) serves on port 53 of a loopback of its
own, so that both resolvers iterate from plain root hints as they would in real life;
starting `poisonproof serve` and an Unbound recursive resolver (iterator only, one thread)
on that world; warming both caches with every name of the query file and checking the
answers (rcode as expected, ours equal to Unbound's, no upstream query once warm); running
dnsperf against them in alternating turns (A B A B) while counting the upstream queries
the world receives; asking an in-process copy of our resolver which queries its cache-hit
fast path replays; and reporting queries per second, CPU microseconds per query (from
/proc/PID/stat), latency and lost queries (stdout, and its section of BENCHMARKS.md with
--write; bench/auth_bench.py owns the rest of that file and the shared pieces). Beside them
in the same A B A B turns: `serve --workers 2`, and Twisted Names and dnslib serving the
same cached answers (bench/reference_dns.py); p50/p99 latency from rate-limited `dnsperf -v`
turns; cold resolution of lab-world names by fresh resolvers (ours, Unbound, Knot
Resolver): latency and upstream queries per name; cache memory (bench/cache_memory.py);
and the exit status: 1 when a target of issue 8 (`TARGETS`) is missed.
Must never: run outside the private namespace it made (it checks that its network namespace
is not the one it was started in), send a packet off loopback, leave a process it started
running (children are stopped in a `finally`; the namespace's PID 1 is this script, so
anything left dies with it), edit anything under src/, or print a figure it did not measure
in this run.

Run: `.venv/bin/python bench/resolver_bench.py [--write BENCHMARKS.md]`; the cold-resolution
part alone (printed, not written): `.venv/bin/python bench/resolver_bench.py --only cold`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import importlib.metadata
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
from auth_bench import (
    DNSPERF_TIMEOUT,
    HOST,
    ROOT,
    SECTION_TITLES,
    BenchError,
    Comparison,
    Run,
    Server,
    cpu_seconds,
    describe_machine,
    dnsperf_argv,
    free_port,
    machine_lines,
    need,
    observations,
    ratios,
    results_table,
    run_dnsperf,
    sigterm_as_exit,
    write_section,
)

from poisonproof.lab.targets import Target, TargetError, TargetSpec
from poisonproof.lab.world import RunningWorld, lab_world, start_world
from poisonproof.net.base import Address, Via
from poisonproof.net.real import RealNetwork
from poisonproof.resolver.frontend import Question
from poisonproof.server.driver import ExchangeDriver
from poisonproof.server.settings import Settings
from poisonproof.server.workers import worker_pids

INNER_ENV = "POISONPROOF_RESOLVER_BENCH_OUTER_NETNS"
"""Set (to the starting network namespace) for the copy of this script run by unshare."""

WORLD_PORT = 53
WORLD = lab_world()
ANSWER, NODATA, NXDOMAIN = "answer", "NODATA", "NXDOMAIN"

# Lab-world names whose every record (and, for NODATA/NXDOMAIN, the negative TTL: the
# SOA minimum, capped by the SOA TTL) lives >= 300 s, so that nothing expires during the
# run: bank.example's www/vpn (TTL 30), cdn.net (30/60) and bank.example's negative
# answers (60) are left out. dnsperf cycles through the file in order.
QUERIES: list[tuple[str, str, str]] = [
    ("mail.bank.example.", "A", ANSWER),
    ("api.bank.example.", "A", ANSWER),  # two records
    ("api.bank.example.", "AAAA", ANSWER),
    ("bank.example.", "MX", ANSWER),  # two records, one out of zone
    ("smtp.bank.example.", "A", ANSWER),  # CNAME inside the zone
    ("hq.branch.bank.example.", "AAAA", ANSWER),  # beside a wildcard
    ("mx1.mailhost.net.", "A", ANSWER),
    ("www.mailhost.net.", "AAAA", ANSWER),
    ("mailhost.net.", "MX", ANSWER),
    ("autoconfig.mailhost.net.", "A", ANSWER),  # CNAME -> CNAME -> A
    ("sports.news.org.", "A", ANSWER),
    ("tech.news.org.", "AAAA", ANSWER),
    ("archive.news.org.", "A", ANSWER),  # CNAME into glueless.org
    ("basket.shop.com.", "A", ANSWER),  # CNAME -> CNAME -> A
    ("europe.shop.com.", "AAAA", ANSWER),  # CNAME into the delegated eu.shop.com
    ("www.glueless.org.", "A", ANSWER),  # delegation without glue
    ("sports.news.org.", "AAAA", NODATA),
    ("nosuch.news.org.", "A", NXDOMAIN),
    ("nx.shop.com.", "A", NXDOMAIN),
    ("nosuch.example.", "A", NXDOMAIN),
]

WARM_TIMEOUT = 5.0  # seconds a resolver gets to answer one warm-up query


# --------------------------------------------------------------------------- the namespace


def netns_id() -> int:
    return os.stat("/proc/self/ns/net").st_ino


def run_in_namespace(argv: list[str], budget: float, script: Path | None = None) -> int:
    """Run this script (or `script`) again inside `unshare -rnpf --mount-proc`; return its
    exit status.

    -r maps us to root in a new user namespace (so port 53 can be bound), -n gives a
    network namespace whose only interface is its own loopback, -p -f --mount-proc makes
    the script PID 1 of a new PID namespace, so every process it starts dies with it.
    unshare blocks SIGTERM and SIGINT while it waits, so on the way out (SIGTERM, ^C, the
    time budget) the copy inside is sent SIGTERM itself, and SIGKILL (which ends the whole
    PID namespace) if it has not exited 20 s later; --kill-child=SIGTERM covers unshare
    itself being killed.
    """
    unshare = need("unshare", "/usr/bin/unshare", "util-linux")
    command = [
        unshare,
        "--kill-child=SIGTERM",
        "-rnpf",
        "--mount-proc",
        sys.executable,
        str((script or Path(__file__)).resolve()),
        *argv,
    ]
    env = {**os.environ, INNER_ENV: str(netns_id())}
    child = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
    try:
        return child.wait(budget)
    except subprocess.TimeoutExpired:
        raise BenchError(f"the benchmark did not finish within {budget:.0f}s") from None
    finally:
        if child.poll() is None:
            inner = children_of(child.pid)
            for pid in inner:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                for pid in inner:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                child.kill()
                child.wait(5)


def children_of(pid: int) -> list[int]:
    """Processes whose parent is `pid` (from /proc/*/stat)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def check_namespace() -> None:
    outer = os.environ.get(INNER_ENV, "")
    if not outer.isdigit() or int(outer) == netns_id():
        raise BenchError("refusing to run: not inside the private network namespace it made")
    ip = need("ip", "/usr/sbin/ip", "iproute2")
    subprocess.run([ip, "link", "set", "lo", "up"], check=True, timeout=10)


# --------------------------------------------------------------------------- the world


class WorldThread:
    """The lab world served from a background thread's event loop (as in tests/conftest.py)."""

    def __init__(self, port: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(start_world(RealNetwork(), port), self.loop)
        self.running: RunningWorld = future.result(30)

    def queries(self) -> int:
        """Queries the world's servers have answered so far, all servers together."""
        return sum(self.running.query_counts().values())

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.running.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@contextlib.contextmanager
def lab_bench(prefix: str) -> Iterator[tuple[Path, Path, Path, WorldThread]]:
    """A temporary work directory holding the query file and the root hints of the lab
    world, served from a thread until the block ends: (workdir, query file, hints, world)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        workdir = Path(tmp)
        query_file = workdir / "queries.txt"
        query_file.write_text("".join(f"{qname} {qtype}\n" for qname, qtype, _ in QUERIES))
        hints = workdir / "root.hints"
        world = WorldThread(WORLD_PORT)
        try:
            hints.write_text(world.running.root_hints_text())
            yield workdir, query_file, hints, world
        finally:
            world.stop()


# --------------------------------------------------------------------------- resolvers


def ask(port: int, qname: str, qtype: str, *, rd: bool, timeout: float) -> dns.message.Message:
    query = dns.message.make_query(qname, qtype)  # no EDNS, like dnsperf's queries
    if not rd:
        query.flags &= ~dns.flags.RD
    return dns.query.udp(query, HOST, port=port, timeout=timeout)


def responds(port: int) -> bool:
    """Any reply at all (RD clear, so nothing is resolved or cached)."""
    try:
        ask(port, "lab.", "SOA", rd=False, timeout=0.5)
    except (dns.exception.Timeout, OSError):
        return False
    return True


def ours(workdir: Path, hints: Path, workers: int = 1, cache: str | None = None) -> Server:
    """`serve` on the world; with `workers` > 1, `cache` is its --worker-cache (None: the
    default), and names the target too."""
    port = free_port()
    name = "poisonproof" if workers == 1 else f"poisonproof-{workers}w"
    if workers > 1 and cache is not None:
        name += f"-{cache}"
    ready_file = workdir / f"{name}.ready"
    argv = [
        sys.executable,
        "-m",
        "poisonproof",
        "serve",
        "--listen",
        f"{HOST}:{port}",
        "--root-hints",
        str(hints),
        "--query-localhost",
        "on",
        "--ready-file",
        str(ready_file),
        *(["--workers", str(workers)] if workers > 1 else []),
        *(["--worker-cache", cache] if workers > 1 and cache is not None else []),
    ]
    server = Server(name, argv, port, workdir / f"{name}.log")
    server.start(lambda: ready_file.exists() and ready_file.stat().st_size > 0)
    if not responds(port):
        raise BenchError(f"poisonproof wrote its ready file but does not answer:\n{server.tail()}")
    return server


def unbound_config(workdir: Path, port: int, hints: Path) -> str:
    return "\n".join(
        [
            "server:",
            '    username: ""',
            '    chroot: ""',
            f'    directory: "{workdir}"',
            f'    pidfile: "{workdir / "unbound.pid"}"',
            "    use-syslog: no",
            '    logfile: ""',
            "    verbosity: 0",
            f"    interface: {HOST}@{port}",
            "    do-ip6: no",
            "    num-threads: 1",
            '    module-config: "iterator"',
            "    access-control: 127.0.0.0/8 allow",
            f'    root-hints: "{hints}"',
            "    do-not-query-localhost: no",
            "",
        ]
    )


def unbound(workdir: Path, binary: str, hints: Path) -> tuple[Server, str]:
    port = free_port()
    config = unbound_config(workdir, port, hints)
    conf = workdir / "unbound.conf"
    conf.write_text(config)
    checkconf = need("unbound-checkconf", "/usr/sbin/unbound-checkconf", "unbound")
    checked = subprocess.run(
        [checkconf, str(conf)], capture_output=True, text=True, timeout=10, check=False
    )
    if checked.returncode != 0:
        raise BenchError(f"unbound-checkconf rejects the generated config:\n{checked.stderr}")
    server = Server("unbound", [binary, "-d", "-c", str(conf)], port, workdir / "unbound.log")
    server.start(lambda: responds(port))
    return server, config


# --------------------------------------------------------------------------- warming


def outcome(reply: dns.message.Message) -> str:
    rcode = reply.rcode()
    if rcode == dns.rcode.NXDOMAIN:
        return NXDOMAIN
    if rcode == dns.rcode.NOERROR:
        return ANSWER if reply.answer else NODATA
    return dns.rcode.to_text(rcode)


def summary(reply: dns.message.Message) -> tuple[str, frozenset[str]]:
    """A line about the reply, and its answer records without TTLs (they count down)."""
    records = frozenset(
        f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)} {rdata.to_text()}"
        for rrset in reply.answer
        for rdata in rrset
    )
    counts = f"{len(reply.answer)}/{len(reply.authority)}/{len(reply.additional)}"
    return f"{dns.rcode.to_text(reply.rcode())}, an/ns/ar {counts}, {len(reply.to_wire())} B", (
        records
    )


@dataclass(frozen=True)
class Warmth:
    upstream_warming: dict[str, int]
    """Queries the world answered while each resolver was asked every name the first time."""
    upstream_check: int
    """... while both were asked every name a second time (0: all from their caches)."""
    comparisons: list[Comparison]
    """Second-pass answers, ours beside Unbound's."""


def warm(servers: list[Server], world: WorldThread) -> Warmth:
    """Ask every resolver every query twice; fail unless all answers are as expected."""
    upstream: dict[str, int] = {}
    for server in servers:
        before = world.queries()
        for qname, qtype, expected in QUERIES:
            reply = ask(server.port, qname, qtype, rd=True, timeout=WARM_TIMEOUT)
            if outcome(reply) != expected:
                raise BenchError(
                    f"{server.name} answers {qname} {qtype} with {outcome(reply)}, "
                    f"expected {expected}:\n{reply}"
                )
        upstream[server.name] = world.queries() - before
    before = world.queries()
    comparisons = []
    for qname, qtype, _expected in QUERIES:
        a_text, a_records = summary(ask(servers[0].port, qname, qtype, rd=True, timeout=2.0))
        b_text, b_records = summary(ask(servers[1].port, qname, qtype, rd=True, timeout=2.0))
        same = a_text.split(",")[0] == b_text.split(",")[0] and a_records == b_records
        comparisons.append(Comparison(f"{qname} {qtype}", a_text, b_text, same))
    return Warmth(upstream, world.queries() - before, comparisons)


# --------------------------------------------------------------------------- fast path


async def _probe(hints: Path) -> list[bool]:
    network = RealNetwork()
    settings = Settings.load(None, {"root_hints": str(hints), "query_localhost": True})
    frontend = settings.build(network.clock)
    driver = ExchangeDriver(network)
    peer: Address = (HOST, 40000)
    for qname, qtype, _expected in QUERIES:  # as the server does for a cache miss
        wire = dns.message.make_query(qname, qtype).to_wire()
        question = frontend.receive(wire, peer, Via.UDP)
        if isinstance(question, Question):
            answer = await driver.run(frontend.resolver.resolve(question.qname, question.qtype))
            frontend.render(question.query, answer, Via.UDP, question.wire)
    assert frontend.answers is not None, "the fast path is on by default"
    replayed = []
    for qname, qtype, _expected in QUERIES:
        hits = frontend.answers.hits
        frontend.receive(dns.message.make_query(qname, qtype).to_wire(), peer, Via.UDP)
        replayed.append(frontend.answers.hits > hits)
    return replayed


def fast_path_probe(hints: Path) -> list[bool]:
    """For each query: does a warm resolver with `serve`'s settings replay it without dnspython?

    The `poisonproof serve` process under test does not expose its counters, so an
    in-process copy (same settings, same Frontend) is warmed the way the server warms and
    asked the same queries, as dnsperf sends them (RD set, no EDNS).
    """
    return asyncio.run(_probe(hints))


# --------------------------------------------------------------------------- beyond the turns

REFERENCE_KINDS = ("twisted", "dnslib")
"""Reference servers (bench/reference_dns.py) answering the same cached names."""
WORKERS = 2
"""`serve --workers` of the multi-process target."""
LATENCY_RATE = 2000
"""Queries per second of the latency turns (dnsperf -Q): every target keeps up with it."""
LATENCY_DURATION = 5
COLD_NAMES = 60
"""Questions of the lab world asked of each fresh resolver for the cold-resolution figures."""
COLD_TARGETS = ("poisonproof", "unbound", "knot-resolver")
COLD_TURNS = 3
"""Fresh starts of each cold target, in alternating order (A B C, C B A, A B C): one run's
median moved by 10-20% from run to run on this 2-core machine, for every resolver."""
COLD_PAUSE = 0.05
"""Seconds after each cold name before the next (its late upstream queries still count)."""
MEMORY_RRSETS = 1_000_000
TARGETS = {
    "cpu_vs_unbound": 1.0,
    "qps_vs_unbound": 1.0,
    "qps_vs_twisted": 4.0,
    "cold_upstream_vs_unbound": 1.0,
    "cold_median_vs_unbound": 1.2,
}
"""Ratio targets of issue 8; the bench exits 1 when one is missed."""


def worker_cpu(server: Server) -> float:
    """utime+stime of the server process and of its workers (for `--workers`)."""
    return cpu_seconds(server.pid) + sum(cpu_seconds(pid) for pid in worker_pids(server.pid))


def timed_turn(server: Server, argv: list[str], round_no: int, duration: int) -> Run:
    """One dnsperf turn; the server's CPU includes its worker processes, if any."""
    before = worker_cpu(server)
    run = run_dnsperf(server, argv, round_no, duration)
    return dataclasses.replace(run, server_cpu=worker_cpu(server) - before)


def answers_file(server: Server, path: Path) -> Path:
    """Our resolver's cached reply to every query of the file, as the reference servers load."""
    replies = {
        f"{qname} {qtype}": ask(server.port, qname, qtype, rd=True, timeout=2.0).to_wire().hex()
        for qname, qtype, _ in QUERIES
    }
    path.write_text(json.dumps(replies, indent=1))
    return path


def reference(workdir: Path, kind: str, answers: Path) -> Server:
    port = free_port()
    ready = workdir / f"{kind}.ready"
    script = Path(__file__).resolve().parent / "reference_dns.py"
    argv = [sys.executable, str(script), kind, str(port), str(answers), str(ready)]
    server = Server(kind, argv, port, workdir / f"{kind}.log")
    qname, qtype, _ = QUERIES[0]

    def ready_now() -> bool:
        if not ready.exists():
            return False
        try:
            ask(port, qname, qtype, rd=True, timeout=0.5)
        except (dns.exception.Timeout, OSError):
            return False
        return True

    server.start(ready_now)
    return server


def warm_workers(server: Server, world: WorldThread) -> int:
    """Each query from 16 fresh source ports, so every worker's cache gets each name;
    the queries the world answered meanwhile."""
    before = world.queries()
    for qname, qtype, expected in QUERIES:
        for _ in range(16):
            reply = ask(server.port, qname, qtype, rd=True, timeout=WARM_TIMEOUT)
            if outcome(reply) != expected:
                raise BenchError(f"{server.name} answers {qname} {qtype} with {outcome(reply)}")
    return world.queries() - before


@dataclass(frozen=True)
class Latency:
    target: str
    samples: int
    p50: float
    p99: float


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def latency_argv(dnsperf: str, port: int, query_file: Path) -> list[str]:
    return [
        dnsperf,
        "-s",
        HOST,
        "-p",
        str(port),
        "-d",
        str(query_file),
        "-l",
        str(LATENCY_DURATION),
        "-Q",
        str(LATENCY_RATE),
        "-t",
        str(DNSPERF_TIMEOUT),
        "-v",
    ]


def latency_turn(dnsperf: str, server: Server, query_file: Path) -> list[float]:
    """Seconds each answered query took, from `dnsperf -v` at LATENCY_RATE queries/s."""
    done = subprocess.run(
        latency_argv(dnsperf, server.port, query_file),
        capture_output=True,
        text=True,
        timeout=LATENCY_DURATION + DNSPERF_TIMEOUT + 30,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"dnsperf -v exited {done.returncode}:\n{done.stderr}")
    return [float(line.rsplit(None, 1)[1]) for line in done.stdout.splitlines() if line[:2] == "> "]


@dataclass(frozen=True)
class Cold:
    target: str
    answered: list[float | None]
    """Per name asked, in order: the client's wait for the answer (s), None if it failed."""
    upstream: list[int]
    """Per name asked, in order: the queries the world answered meanwhile."""
    cpu: float = float("nan")
    """The resolver process's utime+stime over all the names (s), from /proc/PID/stat."""

    @property
    def latencies(self) -> list[float]:
        return [latency for latency in self.answered if latency is not None]

    @property
    def failed(self) -> int:
        return sum(latency is None for latency in self.answered)

    @property
    def cpu_ms_per_name(self) -> float:
        return self.cpu * 1000 / len(self.upstream) if self.upstream else float("nan")

    @property
    def median(self) -> float:
        latencies = self.latencies
        return statistics.median(latencies) if latencies else float("nan")

    @property
    def upstream_per_name(self) -> float:
        return statistics.fmean(self.upstream) if self.upstream else float("nan")


def cold_names() -> list[tuple[str, str]]:
    """COLD_NAMES of the lab world's comparison questions, evenly spread over the list."""
    questions = WORLD.questions()
    step = max(1, len(questions) // COLD_NAMES)
    return questions[::step][:COLD_NAMES]


def cold_run(
    name: str,
    workdir: Path,
    hints: Path,
    world: WorldThread,
    names: list[tuple[str, str]],
    turn: int = 0,
    pause: float = COLD_PAUSE,
) -> Cold:
    """A fresh resolver asked each name once, in turn: latency and upstream queries per name.
    Each turn has its own working directory (Knot Resolver keeps its cache on disk there);
    turn -1 is the unmeasured warm-up."""
    spec = TargetSpec(name=name, weakened=False, listen=HOST, root_hints=hints, port=free_port())
    target = Target(spec, workdir / f"cold-{name}-{'warm-up' if turn < 0 else turn + 1}")
    target.start()
    assert target.proc is not None
    cpu_before = cpu_seconds(target.proc.pid)
    try:
        answered, upstream = ask_each(spec.port, names, world, pause)
        cpu = cpu_seconds(target.proc.pid) - cpu_before
    finally:
        target.stop()
    return Cold(name, answered, upstream, cpu)


def ask_each(
    port: int, names: list[tuple[str, str]], world: WorldThread, pause: float
) -> tuple[list[float | None], list[int]]:
    """Ask the resolver on `port` each name in turn (RD set, no EDNS), `pause` seconds
    after each: per name, the wait for its answer (None: no answer) and the queries the
    world answered meanwhile (late upstream queries still count for it)."""
    answered: list[float | None] = []
    upstream: list[int] = []
    for qname, qtype in names:
        before = world.queries()
        started = time.perf_counter()
        try:
            ask(port, qname, qtype, rd=True, timeout=WARM_TIMEOUT)
            answered.append(time.perf_counter() - started)
        except (dns.exception.Timeout, OSError):
            answered.append(None)
        time.sleep(pause)
        upstream.append(world.queries() - before)
    return answered, upstream


def memory_probe(count: int) -> dict[str, dict[str, float]]:
    script = Path(__file__).resolve().parent / "cache_memory.py"
    done = subprocess.run(
        [sys.executable, str(script), str(count)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"cache_memory.py exited {done.returncode}:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def mean_of(runs: list[Run], target: str, key: str) -> float:
    chosen = [r for r in runs if r.target == target]
    if key == "cpu":
        return statistics.fmean(r.cpu_us_per_query for r in chosen)
    return statistics.fmean(r.qps for r in chosen)


def gate_results(
    runs: list[Run], colds: list[Cold], memory: dict[str, dict[str, float]]
) -> list[tuple[str, float, float, bool]]:
    """(what, measured ratio, target, met) for each target of the issue."""
    cpu = mean_of(runs, "poisonproof", "cpu") / mean_of(runs, "unbound", "cpu")
    qps = mean_of(runs, "poisonproof", "qps") / mean_of(runs, "unbound", "qps")
    twisted = mean_of(runs, "poisonproof", "qps") / mean_of(runs, "twisted", "qps")
    by = {c.target: c for c in colds}
    up = by["poisonproof"].upstream_per_name / by["unbound"].upstream_per_name
    med = by["poisonproof"].median / by["unbound"].median
    cache = memory["cache"]
    bound_ok = cache["entries_after_overfill"] <= cache["bound"]
    return [
        (
            "cached: CPU µs/query, ours / Unbound (at most)",
            cpu,
            TARGETS["cpu_vs_unbound"],
            cpu <= TARGETS["cpu_vs_unbound"],
        ),
        (
            "cached: queries/s, ours / Unbound (at least)",
            qps,
            TARGETS["qps_vs_unbound"],
            qps >= TARGETS["qps_vs_unbound"],
        ),
        (
            "cached: queries/s, ours / Twisted Names (at least)",
            twisted,
            TARGETS["qps_vs_twisted"],
            twisted >= TARGETS["qps_vs_twisted"],
        ),
        (
            "cold: upstream queries per name, ours / Unbound (at most)",
            up,
            TARGETS["cold_upstream_vs_unbound"],
            up <= TARGETS["cold_upstream_vs_unbound"],
        ),
        (
            "cold: median latency, ours / Unbound (at most)",
            med,
            TARGETS["cold_median_vs_unbound"],
            med <= TARGETS["cold_median_vs_unbound"],
        ),
        (
            "memory: a 1M-RRset cache stays within its bound (entries / bound)",
            cache["entries_after_overfill"] / cache["bound"],
            1.0,
            bound_ok,
        ),
    ]


def cold_runs(
    workdir: Path, hints: Path, world: WorldThread, pause: float = COLD_PAUSE
) -> tuple[list[tuple[str, str]], list[Cold]]:
    """Every `COLD_TARGETS` resolver, started fresh `COLD_TURNS` times (the order reversed
    every other turn) on the cold names, `pause` seconds after each name: (names, each
    resolver's turns pooled)."""
    names = cold_names()

    def run(name: str, turn: int) -> Cold:
        try:
            return cold_run(name, workdir, hints, world, names, turn, pause)
        except TargetError as error:
            raise BenchError(str(error)) from None

    print("cold resolution: warming the world's servers (not measured) ...", flush=True)
    for name in COLD_TARGETS:
        run(name, -1)
    turns: dict[str, list[Cold]] = {name: [] for name in COLD_TARGETS}
    for turn in range(COLD_TURNS):
        order = COLD_TARGETS if turn % 2 == 0 else COLD_TARGETS[::-1]
        for name in order:
            print(
                f"cold resolution: {name} ({len(names)} names, turn {turn + 1}/{COLD_TURNS}) ...",
                flush=True,
            )
            turns[name].append(run(name, turn))
    return names, [pooled(runs) for runs in turns.values()]


def pooled(runs: list[Cold]) -> Cold:
    """One resolver's cold turns as one: every name's latency and upstream count, the
    failures and the CPU seconds added up."""
    return Cold(
        runs[0].target,
        [latency for run in runs for latency in run.answered],
        [count for run in runs for count in run.upstream],
        sum(run.cpu for run in runs),
    )


def cold_table(colds: list[Cold], cold_list: list[tuple[str, str]]) -> list[str]:
    """The cold-resolution section: heading, method and one row per resolver."""
    by = {c.target: c for c in colds}
    ub = by.get("unbound")
    lines = [
        "### Cold resolution on the lab world",
        "",
        f"Each resolver started fresh (empty cache; `poisonproof.lab.targets` configs, stock, "
        f"no validation) and asked {len(cold_list)} of the lab world's comparison questions "
        "(`World.questions()`, every "
        f"{max(1, len(WORLD.questions()) // COLD_NAMES)}th), one at a time, RD set, no EDNS; "
        f"{COLD_TURNS} such fresh runs per resolver (each in a new working directory), in "
        "alternating order (A B C, C B A, ...), pooled: the median is of all their latencies "
        "(a single run's median moved by 10-20% from run to run here, for every resolver). "
        "Before them, one unmeasured run of each warms the world's servers, which replay "
        "a reply they have rendered once (`poisonproof.auth.reply_cache`, a query with a "
        "DNS cookie included: the servers ignore cookies), so no resolver pays for being "
        "first to ask. Latency is the client's wait, "
        "upstream the queries the world's servers answered while that name was being "
        "resolved (and 50 ms after); **CPU ms / name** is the resolver process's "
        "utime+stime over its runs (from `/proc/PID/stat`, 50 ms pauses included), "
        "divided by the names asked. Only this part: "
        "`.venv/bin/python bench/resolver_bench.py --only cold` (printed, not written).",
        "",
        "Our miss path is CPU-bound (the world answers each query in about the same time "
        "for every resolver, and we send fewer of them than Unbound), so it was profiled "
        "on CPU time (cProfile with `time.thread_time` inside the `serve` process, and "
        "`perf`, which puts nearly all of it in the Python interpreter) and trimmed "
        "without changing a byte on the wire or a defense: replies and client queries are "
        "parsed by `poisonproof.wire.fast_parse` into the same dnspython `Message` "
        "(4-6x faster than `dns.message.from_wire`; anything unusual falls back to it); "
        "upstream queries are built directly as bytes (`outgoing.query_wire`); each "
        "upstream source port is a plain socket read from the event loop, not an asyncio "
        "transport; the 0x20 case flips are integer masks, not a loop per byte; the "
        "scrubber's canonical (lowercase) copy keeps dnspython's immutable rdata when "
        "their names are lowercase already; dnspython's `Name` hash is remembered per "
        "spelling, its equality compares lowercased labels, and rendering, `parent()` "
        "and `canonicalize()` no longer re-validate the labels of a valid name "
        "(`poisonproof.wire.speedups`: the same bytes, hashes and results, property-tested "
        "against the pinned dnspython); an accepted reply is checked for compression "
        "bombs once; trace text is made only when a trace is asked for; a miss's reply "
        "leaves before its copy for the fast path is made, and an exchange's timeout is a "
        "timer on the reply's own future (no `asyncio.wait_for`). Fewer queries: no "
        "minimised NS probe for a name already known not to be a zone cut (a cached "
        "NODATA for its NS), and the full name at an underscored label (`_tcp`, "
        "`_dmarc`: RFC 8552 names, not delegated in practice). What remains is spread "
        "thin over the iterator, the scrubber, the cache and dnspython's renderer (no "
        "single part above a sixth of it): timestamps in the `serve` process put about "
        "1.1 ms of CPU between a client's query and the first upstream query, and 0.8 ms "
        "between the last reply and the answer (per further upstream query, 0.9 ms), "
        "where Unbound spends about 0.5 ms per name in all. The warm world answers an "
        "upstream query in a few hundred microseconds, so this CPU is most of our "
        "latency. (Until this bench warmed the world and let it replay replies to queries "
        "with a DNS cookie, its servers rendered every reply to us in full, about 1 ms "
        "each, and the ratio read 1.3-1.45: a slower world hid more of our CPU.) The 50 ms "
        "pauses flatter the ratio too: asked back to back (`--only cold --cold-pause 0`, "
        "measured 2026-11-29) the same resolvers answered in 3.62 ms (ours, 2.11 ms CPU per "
        "name), 1.30 ms (Unbound) and 1.20 ms (Knot Resolver), 2.8x; after a pause every "
        "resolver's answer waits about a millisecond more for idle CPUs to wake (this is a "
        "2-vCPU VM), which is a larger share of Unbound's time than of ours. To judge a "
        "change to the miss path, count instructions rather than time it: "
        "`bench/miss_cost.py --instructions` (callgrind; repeats to about 0.3%, where CPU "
        "time here moves by 30%) gave 2.93 M instructions per cold name at commit b41ae9f "
        "and 2.71 M at a694bdf (simulated world; on real loopback sockets 2.97 M and 2.65 "
        "M; client and world included), yet the cold bench above did not move: there the "
        "resolver is a process of its own woken after idle, and runs the same work about "
        "three times slower than one warm process does. Why the 1.2x target is out of "
        "reach of this design: the next section (`bench/cold_floor.py`) times a bare "
        "Python relay, one upstream round trip per name and no DNS work, at about 95% of "
        "Unbound's median on its own.",
        "",
        "| resolver | median latency ms | mean latency ms | upstream queries / name "
        "| failed | median / Unbound | upstream / Unbound | CPU ms / name |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cold in colds:
        mean_ms = statistics.fmean(cold.latencies) * 1000 if cold.latencies else float("nan")
        rel = (
            f"{cold.median / ub.median:.2f} | {cold.upstream_per_name / ub.upstream_per_name:.2f}"
            if ub
            else " | "
        )
        lines.append(
            f"| {cold.target} | {cold.median * 1000:.2f} | {mean_ms:.2f} "
            f"| {cold.upstream_per_name:.2f} | {cold.failed} | {rel} "
            f"| {cold.cpu_ms_per_name:.2f} |"
        )
    return lines


def extra_report(
    runs: list[Run],
    latencies: list[Latency],
    colds: list[Cold],
    cold_list: list[tuple[str, str]],
    memory: dict[str, dict[str, float]],
    gates: list[tuple[str, float, float, bool]],
    dnsperf_latency: str,
) -> list[str]:
    targets = list(dict.fromkeys(r.target for r in runs))
    ub_qps, ub_cpu = mean_of(runs, "unbound", "qps"), mean_of(runs, "unbound", "cpu")
    lat = {x.target: x for x in latencies}
    lines = [
        "### Every target, mean of rounds, with latency",
        "",
        f"p50/p99: from `{dnsperf_latency}` (PORT varies), a turn per target per round in",
        f"the same A B A B order, {LATENCY_RATE:,} queries/s, which every target sustains;",
        "the latency of each answered query as dnsperf -v prints it.",
        "",
        "| target | queries/s | CPU µs/query | qps / Unbound | CPU / Unbound | p50 ms | p99 ms "
        "| latency samples |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for target in targets:
        qps, cpu = mean_of(runs, target, "qps"), mean_of(runs, target, "cpu")
        x = lat.get(target)
        lines.append(
            f"| {target} | {qps:,.0f} | {cpu:,.1f} | {qps / ub_qps:.2f} | {cpu / ub_cpu:.2f} "
            + (f"| {x.p50 * 1000:.3f} | {x.p99 * 1000:.3f} | {x.samples:,} |" if x else "| | | |")
        )
    lines += ["", *cold_table(colds, cold_list)]
    cache, answers = memory["cache"], memory["answers"]
    lines += [
        "",
        "### Memory",
        "",
        f"`bench/cache_memory.py {int(cache['rrsets'])}`: a fresh `Cache` bounded at "
        f"{int(cache['bound']):,} entries (`cache-size`) is given {int(cache['rrsets']):,} "
        "distinct A RRsets (one `put` each, as answers are stored), then 10% more; resident "
        "memory from /proc/self/statm.",
        "",
        f"- bytes per cached RRset: {cache['bytes_per_rrset']:,.0f} "
        f"({cache['bytes_per_rrset'] * cache['rrsets'] / 2**20:,.0f} MiB for "
        f"{int(cache['rrsets']):,})",
        f"- after {int(cache['rrsets'] * 1.1):,} puts: {int(cache['entries_after_overfill']):,} "
        f"entries ({int(cache['evictions']):,} evicted, least recently used first); process "
        f"resident size {cache['rss_full_bytes'] / 2**20:,.0f} MiB",
        f"- fast-path stored replies (`AnswerCache`, reply + TTL offsets + exact-bytes memo): "
        f"{answers['bytes_per_reply']:,.0f} bytes each ({int(answers['replies']):,} measured)",
        "",
        "### Targets (the bench exits 1 when one is missed)",
        "",
        "| target | measured | limit | met |",
        "|---|---:|---:|---|",
        *(
            f"| {what} | {value:.2f} | {limit:g} | {'yes' if met else '**no**'} |"
            for what, value, limit, met in gates
        ),
    ]
    return lines


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def workers_notes(runs: list[Run], one_warming: int, multi_warming: int) -> list[str]:
    name = f"poisonproof-{WORKERS}w"
    one_qps, one_cpu = mean_of(runs, "poisonproof", "qps"), mean_of(runs, "poisonproof", "cpu")
    multi_qps, multi_cpu = mean_of(runs, name, "qps"), mean_of(runs, name, "cpu")
    return [
        "",
        "### Workers: a cache per process, and one answer table they share",
        "",
        f"**{name}** is `serve --workers {WORKERS}`: {WORKERS} processes bound to the same "
        "port with SO_REUSEPORT (the kernel spreads clients over them by address hash), "
        "each with its own cache, and with the default `--worker-cache shared` one table of "
        "rendered replies in shared memory: what one worker's full path rendered, another "
        "takes into its own cache on a miss (so every hit stays a local one). Here it did "
        f"{multi_qps:,.0f} queries/s at {multi_cpu:.1f} CPU µs/query (all workers), against "
        f"{one_qps:,.0f} and {one_cpu:.1f} for one process: on this 2-CPU machine dnsperf "
        "needs most of a CPU itself, so a second worker adds little throughput, and it "
        "costs CPU per query (two processes waking for smaller batches).",
        f"Warming cost: one process sent {one_warming} queries to the world for the query "
        f"file; {WORKERS} workers, asked each name from 16 source ports, {multi_warming} "
        "(a name one worker resolved is answered by the others from the table; a worker "
        "that misses a name the table lacks still resolves the delegations its own cache "
        "has not seen). `--worker-cache private` (every worker resolves every name: misses "
        "multiplied by the number of workers) is measured beside it by "
        "`bench/worker_cache.py`.",
    ]


# --------------------------------------------------------------------------- report


def answers_table(warmth: Warmth, replayed: list[bool]) -> list[str]:
    lines = [
        "| query | expected | poisonproof | unbound | same answer | fast path |",
        "|---|---|---|---|---|---|",
    ]
    for (_qname, _qtype, expected), comparison, fast in zip(
        QUERIES, warmth.comparisons, replayed, strict=True
    ):
        lines.append(
            f"| {comparison.query} | {expected} | {comparison.ours} | {comparison.unbound} "
            f"| {'yes' if comparison.same else '**no**'} | {'yes' if fast else '**no**'} |"
        )
    return lines


def resolver_notes(warmth: Warmth, runs: list[Run], upstream: list[int], fast: int) -> list[str]:
    notes = [
        f"- Warming (each name asked once): poisonproof sent "
        f"{warmth.upstream_warming['poisonproof']} queries to the world, Unbound "
        f"{warmth.upstream_warming['unbound']}; asking every name again of both: "
        f"{warmth.upstream_check}.",
    ]
    during = sum(upstream)
    if during:
        worst = max(zip(upstream, runs, strict=True), key=lambda pair: pair[0])
        notes.append(
            f"- The world answered {during:,} queries during the timed turns (most in round "
            f"{worst[1].round}, {worst[1].target}: {worst[0]:,}): not every answer came from "
            "the cache."
        )
    else:
        notes.append(
            "- The world answered no query during the timed turns: every answer came from the "
            "resolvers' caches."
        )
    notes.append(
        f"- The in-process copy of our resolver replays {fast} of {len(QUERIES)} queries of the "
        "file through its cache-hit fast path (stored wire answer, no dnspython)."
    )
    return notes


def report(
    machine_text: list[str],
    bench_command: str,
    perf_command: str,
    ours_command: str,
    config: str,
    warmth: Warmth,
    replayed: list[bool],
    runs: list[Run],
    upstream: list[int],
    nproc: int,
    started: datetime.datetime,
) -> str:
    query_lines = "\n".join(f"{qname} {qtype}" for qname, qtype, _ in QUERIES)
    rcode_lines = [f"- round {r.round}, {r.target}: {r.rcodes}" for r in runs]
    fast = sum(replayed)
    parts = [
        f"## {SECTION_TITLES['resolver']}",
        "",
        "The recursive resolver answering names it already has in its cache (the path that",
        "usually carries most of a resolver's traffic), beside Unbound doing the same. Ours",
        "has a cache-hit fast path that replays stored wire answers without dnspython",
        "(patching ID, question case and TTLs); a cache hit the fast path cannot serve takes",
        "the full path (parse the query, look in the cache, render with dnspython). The UDP",
        "listener (`poisonproof.net.udp_batch`) reads up to 64 datagrams per recvmmsg call,",
        "offers the whole batch to the fast path (an exact-bytes memo: the query's bytes",
        "after its ID map to the rest of the reply, patched for that question's case and aged",
        "for the current second), answers the hits with one sendmmsg call and hands the rest",
        "to the full path; no task or future is made for a cache hit. Every",
        f"number in this section comes from the run of {started:%Y-%m-%d %H:%M %Z};",
        f"`{bench_command}` regenerates it.",
        "",
        "### Machine",
        "",
        *machine_text,
        "",
        "### Method",
        "",
        f"Command: `{bench_command}`",
        "",
        "The script re-runs itself inside a private user+network+PID namespace",
        "(`unshare -rnpf --mount-proc`, then `ip link set lo up`). There the lab world",
        "(`poisonproof.lab.world.start_world`, run from a thread of the script:",
        f"{len(WORLD.servers)} authoritative servers on {WORLD.servers[0].address} to "
        f"{WORLD.servers[-1].address})",
        f"serves on port {WORLD_PORT}, so both resolvers iterate from the same root-hints file",
        "as they would from the real root, and nothing can leave the namespace. Both",
        "resolvers run on 127.0.0.1 on free ports, single-threaded (ours is",
        "one Python process; Unbound has `num-threads: 1` and only the iterator module, no",
        "DNSSEC validation, like ours).",
        "",
        f"Also in the turns: **poisonproof-{WORKERS}w**, `serve --workers {WORKERS}` (see",
        "Workers below), and for reference **twisted** (Twisted Names "
        f"{_version('twisted')}) and **dnslib** (dnslib {_version('dnslib')}) serving the",
        "same answers from their caches (`bench/reference_dns.py`: our resolver's cached",
        "replies loaded into Twisted's `CacheResolver` behind `DNSServerFactory`, and into a",
        "dnslib `BaseResolver` behind its `DNSServer`; each parses every query and builds",
        "every reply with its own classes). Twisted's cache keeps no rcode: it answers the",
        "NXDOMAIN names of the file NOERROR, with the SOA.",
        "",
        "Before the timed turns each resolver is asked every name of the query file once",
        "(RD set, no EDNS, like dnsperf), and each answer's rcode must be as expected; then",
        "both are asked every name again, and those cached answers are compared below. The",
        "file holds only names whose records, and whose negative answers, live at least",
        "300 s, longer than the run. Then dnsperf runs against them in alternating turns",
        "(poisonproof, unbound, poisonproof-2w, twisted, dnslib, then again), for each turn",
        "(PORT varies):",
        "",
        "```",
        perf_command,
        "```",
        "",
        "Columns as in the authoritative section: no rate limit, so queries/s is throughput",
        f"at that concurrency; a query unanswered after {DNSPERF_TIMEOUT}s counts as lost;",
        "**CPU µs/query** is the resolver process's utime+stime from `/proc/PID/stat` over the",
        "turn, divided by the queries completed; **server CPU**, **dnsperf CPU** and **other",
        "CPU** are shares of one CPU over the turn (other: the rest of the machine's busy time",
        "in `/proc/stat`, softirq of loopback traffic included). **upstream** counts the",
        "queries the world's servers answered during the turn: 0 means every reply came from",
        "the resolver's cache.",
        "",
        "The query file (dnsperf cycles through it):",
        "",
        "```",
        query_lines,
        "```",
        "",
        f"Ours: `{ours_command}`.",
        "Unbound: `unbound -d -c unbound.conf` with this generated config:",
        "",
        "<details><summary>unbound.conf</summary>",
        "",
        "```",
        config.rstrip(),
        "```",
        "",
        "</details>",
        "",
        "### Same answers from the cache?",
        "",
        "The second time each name was asked (both caches warm). `an/ns/ar` counts records",
        "in the answer/authority/additional sections, B is the reply's size in bytes; the",
        "answers match when the rcode and the answer records (TTLs aside) are equal.",
        "**fast path**: whether our resolver replays that query's stored wire answer, asked",
        "of an in-process copy of it (same settings, warmed the same way; the process under",
        f"test does not expose its counters): {fast} of {len(QUERIES)}.",
        "",
        *answers_table(warmth, replayed),
        "",
        "### Results",
        "",
        *results_table(runs, ("upstream", [f"{n:,}" for n in upstream])),
        "",
        *ratios(runs),
        "",
        "Response codes dnsperf saw:",
        "",
        *rcode_lines,
        "",
        "### Observations",
        "",
        *resolver_notes(warmth, runs, upstream, fast),
        *observations(runs, warmth.comparisons, nproc),
        "",
    ]
    return "\n".join(parts)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="also write its section of this Markdown file")
    parser.add_argument("--duration", type=int, default=10, help="dnsperf -l per turn (s)")
    parser.add_argument("--rounds", type=int, default=2, help="turns per resolver")
    parser.add_argument("--clients", type=int, default=4, help="dnsperf -c")
    parser.add_argument("--outstanding", type=int, default=100, help="dnsperf -q")
    parser.add_argument(
        "--memory-rrsets", type=int, default=MEMORY_RRSETS, help="RRsets of the memory probe"
    )
    parser.add_argument(
        "--only",
        choices=("cold", "cached"),
        help="run only this part (cold: cold resolution of the lab-world names; cached: "
        "ours and Unbound on cached names, no reference servers; prints, never writes, and "
        "exits 1 when that part's targets are missed)",
    )
    parser.add_argument(
        "--cold-pause",
        type=float,
        default=COLD_PAUSE,
        help=f"seconds between cold names (default {COLD_PAUSE}; another value only with "
        "--only cold: the written figures are for the default)",
    )
    args = parser.parse_args(argv)
    if args.cold_pause != COLD_PAUSE and args.only != "cold":
        parser.error("--cold-pause goes with --only cold")
    if args.cold_pause < 0:
        parser.error("--cold-pause must be 0 or more seconds")
    return args


def bench_cold(args: argparse.Namespace) -> int:
    """Inside the namespace: the cold-resolution part alone; its exit status."""
    check_namespace()
    with sigterm_as_exit(), lab_bench("resolver-bench-") as (workdir, _, hints, world):
        names, colds = cold_runs(workdir, hints, world, args.cold_pause)
    print()
    print("\n".join(cold_table(colds, names)))
    by = {c.target: c for c in colds}
    up = by["poisonproof"].upstream_per_name / by["unbound"].upstream_per_name
    med = by["poisonproof"].median / by["unbound"].median
    missed = []
    if up > TARGETS["cold_upstream_vs_unbound"]:
        missed.append("cold: upstream queries per name, ours / Unbound (at most)")
    if med > TARGETS["cold_median_vs_unbound"]:
        missed.append("cold: median latency, ours / Unbound (at most)")
    for what in missed:
        print(f"resolver_bench: target missed: {what}", file=sys.stderr)
    return 1 if missed else 0


def alternating_turns(
    servers: list[Server],
    world: WorldThread,
    dnsperf: str,
    query_file: Path,
    args: argparse.Namespace,
) -> list[tuple[Run, int]]:
    """dnsperf against each server in turn (A B A B), `args.rounds` times: each turn's run
    and the queries the world answered meanwhile (0 when every answer came from a cache)."""
    turns: list[tuple[Run, int]] = []
    for round_no in range(1, args.rounds + 1):
        for server in servers:
            perf = dnsperf_argv(
                dnsperf, server.port, query_file, args.duration, args.clients, args.outstanding
            )
            print(f"round {round_no}: {server.name} ({args.duration}s) ...", flush=True)
            before = world.queries()
            run = timed_turn(server, perf, round_no, args.duration)
            turns.append((run, world.queries() - before))
    return turns


def bench_cached(args: argparse.Namespace) -> int:
    """Inside the namespace: ours and Unbound on the cached names alone; its exit status."""
    check_namespace()
    dnsperf = need("dnsperf", "/usr/bin/dnsperf")
    unbound_bin = need("unbound", "/usr/sbin/unbound")
    servers: list[Server] = []
    with sigterm_as_exit(), lab_bench("resolver-bench-") as (workdir, query_file, hints, world):
        try:
            servers = [ours(workdir, hints), unbound(workdir, unbound_bin, hints)[0]]
            warm(servers, world)
            runs = [run for run, _ in alternating_turns(servers, world, dnsperf, query_file, args)]
        finally:
            for server in servers:
                server.stop()
    print()
    print("\n".join(results_table(runs)))
    print()
    print("\n".join(ratios(runs)))
    cpu = mean_of(runs, "poisonproof", "cpu") / mean_of(runs, "unbound", "cpu")
    qps = mean_of(runs, "poisonproof", "qps") / mean_of(runs, "unbound", "qps")
    print(f"\nours / Unbound: CPU µs/query {cpu:.3f}, queries/s {qps:.3f}")
    missed = []
    if cpu > TARGETS["cpu_vs_unbound"]:
        missed.append("cached: CPU µs/query, ours / Unbound (at most)")
    if qps < TARGETS["qps_vs_unbound"]:
        missed.append("cached: queries/s, ours / Unbound (at least)")
    for what in missed:
        print(f"resolver_bench: target missed: {what}", file=sys.stderr)
    return 1 if missed else 0


def bench(args: argparse.Namespace, bench_command: str) -> tuple[str, int]:
    """Inside the namespace: run everything; the report section and the exit status."""
    check_namespace()
    started = datetime.datetime.now().astimezone()
    dnsperf = need("dnsperf", "/usr/bin/dnsperf")
    unbound_bin = need("unbound", "/usr/sbin/unbound")
    machine = describe_machine(dnsperf, unbound_bin)
    servers: list[Server] = []
    with sigterm_as_exit(), lab_bench("resolver-bench-") as (workdir, query_file, hints, world):
        try:
            servers.append(ours(workdir, hints))
            ub, config = unbound(workdir, unbound_bin, hints)
            servers.append(ub)
            print("warming both caches ...", flush=True)
            warmth = warm(servers, world)
            answers = answers_file(servers[0], workdir / "answers.json")
            multi = ours(workdir, hints, WORKERS)
            servers.append(multi)
            multi_warming = warm_workers(multi, world)
            for kind in REFERENCE_KINDS:
                servers.append(reference(workdir, kind, answers))
            turns = alternating_turns(servers, world, dnsperf, query_file, args)
            runs = [run for run, _ in turns]
            upstream = [answered for _, answered in turns]
            samples: dict[str, list[float]] = {server.name: [] for server in servers}
            for round_no in range(1, args.rounds + 1):
                for server in servers:
                    print(f"latency round {round_no}: {server.name} ...", flush=True)
                    samples[server.name] += latency_turn(dnsperf, server, query_file)
            latencies = [
                Latency(name, len(v), percentile(v, 0.50), percentile(v, 0.99))
                for name, v in samples.items()
                if v
            ]
            print("asking an in-process copy of our resolver about its fast path ...", flush=True)
            replayed = fast_path_probe(hints)
            for server in servers:
                server.stop()
            names, colds = cold_runs(workdir, hints, world)
        finally:
            for server in servers:
                server.stop()
    print(f"cache memory ({args.memory_rrsets:,} RRsets) ...", flush=True)
    memory = memory_probe(args.memory_rrsets)
    gates = gate_results(runs, colds, memory)
    after = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    shown = dnsperf_argv(
        "dnsperf", 0, Path("queries.txt"), args.duration, args.clients, args.outstanding
    )
    perf_command = shlex.join(shown).replace("-p 0", "-p PORT")
    latency_command = shlex.join(latency_argv("dnsperf", 0, Path("queries.txt"))).replace(
        "-p 0", "-p PORT"
    )
    ours_command = (
        "python -m poisonproof serve --listen 127.0.0.1:PORT --root-hints root.hints "
        "--query-localhost on --ready-file F"
    )
    text = report(
        machine_lines(machine, after),
        bench_command,
        perf_command,
        ours_command,
        config,
        warmth,
        replayed,
        runs,
        upstream,
        machine.nproc,
        started,
    )
    extra = extra_report(runs, latencies, colds, names, memory, gates, latency_command)
    extra += workers_notes(runs, warmth.upstream_warming["poisonproof"], multi_warming)
    text = text.rstrip("\n") + "\n\n" + "\n".join(extra) + "\n"
    print()
    print("\n".join(answers_table(warmth, replayed)))
    print()
    print("\n".join(results_table(runs, ("upstream", [f"{n:,}" for n in upstream]))))
    print()
    print("\n".join(ratios(runs)))
    print()
    print("\n".join(resolver_notes(warmth, runs, upstream, sum(replayed))))
    print("\n".join(observations(runs, warmth.comparisons, machine.nproc)))
    print()
    print("\n".join(extra))
    missed = [what for what, _value, _limit, met in gates if not met]
    for what in missed:
        print(f"resolver_bench: target missed: {what}", file=sys.stderr)
    return text, 1 if missed else 0


def main(argv: list[str] | None = None) -> int:
    given = argv if argv is not None else sys.argv[1:]
    args = parse_args(given)
    if args.only and args.write:
        raise BenchError("--only runs a part of the bench: it cannot --write its section")
    if INNER_ENV not in os.environ:
        if args.only == "cold":
            with sigterm_as_exit():
                return run_in_namespace(given, 600)
        if args.only == "cached":
            with sigterm_as_exit():
                return run_in_namespace(given, 2 * args.rounds * (args.duration + 60) + 300)
        turns = args.rounds * (2 + 1 + len(REFERENCE_KINDS))
        budget = turns * (args.duration + LATENCY_DURATION + 2 * DNSPERF_TIMEOUT + 60) + 2400
        with sigterm_as_exit():
            return run_in_namespace(given, budget)
    python = sys.executable
    if python.startswith(str(ROOT)):
        python = os.path.relpath(python, ROOT)
    bench_command = shlex.join([python, "bench/resolver_bench.py", *given])
    if args.only == "cold":
        with sigterm_as_exit():
            return bench_cold(args)
    if args.only == "cached":
        with sigterm_as_exit():
            return bench_cached(args)
    with sigterm_as_exit():  # as PID 1 of its namespace it ignores signals it does not handle
        text, status = bench(args, bench_command)
    if args.write:
        write_section(args.write, "resolver", text)
        print(f"\nwrote the resolver section of {args.write}")
    return status


def run_as_script(name: str, entry: Callable[[], int]) -> None:
    """Exit with `entry()`'s status; a `BenchError` is printed as `name: ...` and exits 1.
    Outside the network namespace, also the bench's wall time in all."""
    started = time.monotonic()
    try:
        status = entry()
    except BenchError as error:
        print(f"{name}: {error}", file=sys.stderr)
        status = 1
    if INNER_ENV not in os.environ:
        print(f"{name}: {time.monotonic() - started:.0f}s in all", file=sys.stderr)
    sys.exit(status)


if __name__ == "__main__":
    run_as_script("resolver_bench", main)

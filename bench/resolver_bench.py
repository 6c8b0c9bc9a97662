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
--write; bench/auth_bench.py owns the rest of that file and the shared pieces).
Must never: run outside the private namespace it made (it checks that its network namespace
is not the one it was started in), send a packet off loopback, leave a process it started
running (children are stopped in a `finally`; the namespace's PID 1 is this script, so
anything left dies with it), edit anything under src/, or print a figure it did not measure
in this run.

Run: `.venv/bin/python bench/resolver_bench.py [--write BENCHMARKS.md]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
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

from poisonproof.lab.world import RunningWorld, lab_world, start_world
from poisonproof.net.base import Address, Via
from poisonproof.net.real import RealNetwork
from poisonproof.resolver.frontend import Question
from poisonproof.server.driver import ExchangeDriver
from poisonproof.server.settings import Settings

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


def run_in_namespace(argv: list[str], budget: float) -> int:
    """Run this script again inside `unshare -rnpf --mount-proc`; return its exit status.

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
        str(Path(__file__).resolve()),
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


def ours(workdir: Path, hints: Path) -> Server:
    port = free_port()
    ready_file = workdir / "poisonproof.ready"
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
    ]
    server = Server("poisonproof", argv, port, workdir / "poisonproof.log")
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
        "the full path (parse the query, look in the cache, render with dnspython). Every",
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
        "Before the timed turns each resolver is asked every name of the query file once",
        "(RD set, no EDNS, like dnsperf), and each answer's rcode must be as expected; then",
        "both are asked every name again, and those cached answers are compared below. The",
        "file holds only names whose records, and whose negative answers, live at least",
        "300 s, longer than the run. Then dnsperf runs against them in alternating turns",
        "(poisonproof, unbound, poisonproof, ...), for each turn (PORT varies):",
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
    return parser.parse_args(argv)


def bench(args: argparse.Namespace, bench_command: str) -> str:
    """Inside the namespace: run everything and return the report section."""
    check_namespace()
    started = datetime.datetime.now().astimezone()
    dnsperf = need("dnsperf", "/usr/bin/dnsperf")
    unbound_bin = need("unbound", "/usr/sbin/unbound")
    machine = describe_machine(dnsperf, unbound_bin)
    servers: list[Server] = []
    world: WorldThread | None = None
    with sigterm_as_exit(), tempfile.TemporaryDirectory(prefix="resolver-bench-") as tmp:
        workdir = Path(tmp)
        query_file = workdir / "queries.txt"
        query_file.write_text("".join(f"{qname} {qtype}\n" for qname, qtype, _ in QUERIES))
        hints = workdir / "root.hints"
        try:
            world = WorldThread(WORLD_PORT)
            hints.write_text(world.running.root_hints_text())
            servers.append(ours(workdir, hints))
            ub, config = unbound(workdir, unbound_bin, hints)
            servers.append(ub)
            print("warming both caches ...", flush=True)
            warmth = warm(servers, world)
            runs: list[Run] = []
            upstream: list[int] = []
            for round_no in range(1, args.rounds + 1):
                for server in servers:
                    perf = dnsperf_argv(
                        dnsperf,
                        server.port,
                        query_file,
                        args.duration,
                        args.clients,
                        args.outstanding,
                    )
                    print(f"round {round_no}: {server.name} ({args.duration}s) ...", flush=True)
                    before = world.queries()
                    runs.append(run_dnsperf(server, perf, round_no, args.duration))
                    upstream.append(world.queries() - before)
            print("asking an in-process copy of our resolver about its fast path ...", flush=True)
            replayed = fast_path_probe(hints)
        finally:
            for server in servers:
                server.stop()
            if world is not None:
                world.stop()
    after = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    shown = dnsperf_argv(
        "dnsperf", 0, Path("queries.txt"), args.duration, args.clients, args.outstanding
    )
    perf_command = shlex.join(shown).replace("-p 0", "-p PORT")
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
    print()
    print("\n".join(answers_table(warmth, replayed)))
    print()
    print("\n".join(results_table(runs, ("upstream", [f"{n:,}" for n in upstream]))))
    print()
    print("\n".join(ratios(runs)))
    print()
    print("\n".join(resolver_notes(warmth, runs, upstream, sum(replayed))))
    print("\n".join(observations(runs, warmth.comparisons, machine.nproc)))
    return text


def main(argv: list[str] | None = None) -> int:
    given = argv if argv is not None else sys.argv[1:]
    args = parse_args(given)
    if INNER_ENV not in os.environ:
        budget = args.rounds * 2 * (args.duration + DNSPERF_TIMEOUT + 30) + 180
        with sigterm_as_exit():
            return run_in_namespace(given, budget)
    python = sys.executable
    if python.startswith(str(ROOT)):
        python = os.path.relpath(python, ROOT)
    bench_command = shlex.join([python, "bench/resolver_bench.py", *given])
    with sigterm_as_exit():  # as PID 1 of its namespace it ignores signals it does not handle
        text = bench(args, bench_command)
    if args.write:
        write_section(args.write, "resolver", text)
        print(f"\nwrote the resolver section of {args.write}")
    return 0


if __name__ == "__main__":
    started = time.monotonic()
    try:
        status = main()
    except BenchError as error:
        print(f"resolver_bench: {error}", file=sys.stderr)
        status = 1
    if INNER_ENV not in os.environ:
        print(f"resolver_bench: {time.monotonic() - started:.0f}s in all", file=sys.stderr)
    sys.exit(status)

"""Benchmark: our authoritative server beside Unbound, both driven by dnsperf.

Owns: starting `poisonproof auth` and an Unbound that serves the same records as
`local-data` (both on loopback, on free ports, from a temp dir), checking that they give
the same answers, running dnsperf against them in alternating turns (A B A B), reading
each server's CPU time from /proc/PID/stat around every run, and reporting queries per
second, CPU microseconds per query, latency and lost queries (stdout, and its section of
BENCHMARKS.md with --write). Also the pieces bench/resolver_bench.py reuses: the dnsperf
turn, the /proc readings, the tables, and writing one section of BENCHMARKS.md without
touching the others (`write_section`).
Must never: send a packet off loopback, leave a server it started running (every child is
stopped in a `finally`, each step has a timeout), edit anything under src/, or print a
figure it did not measure in this run.

Run: `.venv/bin/python bench/auth_bench.py [--write BENCHMARKS.md]` (or `make bench`).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.zone

ROOT = Path(__file__).resolve().parent.parent
ZONE_FILE = ROOT / "src" / "poisonproof" / "data" / "zones" / "bank.example.zone"
HOST = "127.0.0.1"

# One query file for both servers: positive answers, CNAME chains, apex types, NODATA and
# NXDOMAIN. dnsperf cycles through it in order.
QUERIES: list[tuple[str, str]] = [
    ("www.bank.example.", "A"),
    ("mail.bank.example.", "A"),
    ("login.bank.example.", "A"),
    ("portal.bank.example.", "A"),
    ("ns1.bank.example.", "A"),
    ("www.bank.example.", "AAAA"),
    ("bank.example.", "MX"),
    ("bank.example.", "NS"),
    ("bank.example.", "SOA"),
    ("mail.bank.example.", "AAAA"),
    ("nosuch.bank.example.", "A"),
    ("x7f3.bank.example.", "A"),
    ("missing.bank.example.", "AAAA"),
]

SECTION_TITLES = {
    "auth": "Authoritative server: `poisonproof auth` vs Unbound `local-data`",
    "resolver": "Recursive resolver, cached names: `poisonproof serve` vs Unbound",
}
"""The sections of BENCHMARKS.md, in file order; each script writes only its own."""

START_TIMEOUT = 15.0  # seconds a server gets to start answering
STOP_TIMEOUT = 5.0  # seconds between SIGTERM and SIGKILL
DNSPERF_TIMEOUT = 5  # dnsperf -t: seconds before a query counts as lost
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """Something the benchmark needs is missing or did not start; the message says what."""


# --------------------------------------------------------------------------- machine


@dataclass(frozen=True)
class Machine:
    nproc: int
    cpu_model: str
    kernel: str
    python: str
    dnspython: str
    uvloop: str
    dnsperf: str
    unbound: str
    loadavg: str
    source: str


def _first_match(pattern: str, text: str, default: str = "unknown") -> str:
    found = re.search(pattern, text, re.MULTILINE)
    return found.group(1).strip() if found else default


def _tool_output(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    return done.stdout + done.stderr


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def source_state() -> str:
    """The git commit of the tree measured, and whether src/ differs from it."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    return f"git {head}" + (", with uncommitted changes under src/" if dirty else "")


def describe_machine(dnsperf: str, unbound: str) -> Machine:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    return Machine(
        nproc=len(os.sched_getaffinity(0)),
        cpu_model=_first_match(r"^model name\s*:\s*(.+)$", cpuinfo),
        kernel=f"{platform.system()} {platform.release()}",
        python=f"{platform.python_implementation()} {platform.python_version()}",
        dnspython=_package_version("dnspython"),
        uvloop=_package_version("uvloop"),
        dnsperf=_first_match(r"^Version\s+(\S+)", _tool_output([dnsperf, "-h"])),
        unbound=_first_match(r"^Version\s+(\S+)", _tool_output([unbound, "-V"])),
        loadavg=" ".join(Path("/proc/loadavg").read_text().split()[:3]),
        source=source_state(),
    )


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    """A port free for both UDP and TCP on HOST right now (both servers bind both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((HOST, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((HOST, port))
                except OSError:
                    continue
                return port
    raise BenchError("no free UDP+TCP port on loopback")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads), from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # fields from 3 (state) onwards
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, steal) CPU seconds of all CPUs since boot, from the first line of /proc/stat.

    Busy is user+nice+system+irq+softirq; steal (time a hypervisor ran something else on
    our virtual CPUs) is kept apart, since no process here used it.
    """
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK


def ask(port: int, qname: str, qtype: str, timeout: float = 1.0) -> dns.message.Message:
    query = dns.message.make_query(qname, qtype)
    query.flags &= ~dns.flags.RD
    return dns.query.udp(query, HOST, port=port, timeout=timeout)


@dataclass
class Server:
    name: str
    argv: list[str]
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, ready: Callable[[], bool]) -> None:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"{self.name} exited at start:\n{self.tail()}")
            if ready():
                return
            time.sleep(0.1)
        raise BenchError(f"{self.name} not answering after {START_TIMEOUT:.0f}s:\n{self.tail()}")

    def answers(self) -> bool:
        try:
            ask(self.port, QUERIES[0][0], QUERIES[0][1], timeout=0.5)
        except (dns.exception.Timeout, OSError):
            return False
        return True

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise BenchError(f"{self.name} is no longer running:\n{self.tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def ours(workdir: Path) -> Server:
    port = free_port()
    ready_file = workdir / "poisonproof.ready"
    argv = [
        sys.executable,
        "-m",
        "poisonproof",
        "auth",
        "--zone",
        str(ZONE_FILE),
        "--listen",
        f"{HOST}:{port}",
        "--ready-file",
        str(ready_file),
    ]
    server = Server("poisonproof", argv, port, workdir / "poisonproof.log")
    server.start(lambda: ready_file.exists() and ready_file.stat().st_size > 0)
    if not server.answers():
        raise BenchError(f"poisonproof wrote its ready file but does not answer:\n{server.tail()}")
    return server


def local_data_lines(zone_file: Path) -> list[str]:
    """One Unbound `local-data:` line per record of the zone file (loaded with dnspython)."""
    zone = dns.zone.from_file(str(zone_file), relativize=False)
    lines = []
    for name, ttl, rdata in zone.iterate_rdatas():
        rdclass = dns.rdataclass.to_text(rdata.rdclass)
        record = f"{name} {ttl} {rdclass} {rdata.rdtype.name} {rdata.to_text()}"
        if "'" in record:
            raise BenchError(f"cannot quote record for unbound.conf: {record}")
        lines.append(f"    local-data: '{record}'")
    return lines


def unbound_config(workdir: Path, port: int) -> str:
    zone = dns.zone.from_file(str(ZONE_FILE), relativize=False)
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
            f'    local-zone: "{zone.origin}" static',
            *local_data_lines(ZONE_FILE),
            "",
        ]
    )


def unbound(workdir: Path, binary: str) -> tuple[Server, str]:
    port = free_port()
    config = unbound_config(workdir, port)
    conf = workdir / "unbound.conf"
    conf.write_text(config)
    checkconf = shutil.which("unbound-checkconf")
    if checkconf:
        checked = subprocess.run(
            [checkconf, str(conf)], capture_output=True, text=True, timeout=10, check=False
        )
        if checked.returncode != 0:
            raise BenchError(f"unbound-checkconf rejects the generated config:\n{checked.stderr}")
    server = Server("unbound", [binary, "-d", "-c", str(conf)], port, workdir / "unbound.log")
    server.start(server.answers)
    return server, config


# --------------------------------------------------------------------------- answers


@dataclass(frozen=True)
class Comparison:
    query: str
    ours: str
    unbound: str
    same: bool


def _summary(reply: dns.message.Message) -> tuple[str, frozenset[str]]:
    # Record by record, so that rrset order (Unbound rotates it) does not count.
    answer = frozenset(line for rrset in reply.answer for line in rrset.to_text().splitlines())
    counts = f"{len(reply.answer)}/{len(reply.authority)}/{len(reply.additional)}"
    aa = " aa" if reply.flags & dns.flags.AA else ""
    return f"{dns.rcode.to_text(reply.rcode())}{aa}, an/ns/ar {counts}", answer


def compare_answers(ours_port: int, unbound_port: int) -> list[Comparison]:
    """Ask both servers every query once; same = same rcode and same answer section."""
    rows = []
    for qname, qtype in QUERIES:
        a_text, a_answer = _summary(ask(ours_port, qname, qtype, timeout=2.0))
        b_text, b_answer = _summary(ask(unbound_port, qname, qtype, timeout=2.0))
        same = a_text.split(",")[0] == b_text.split(",")[0] and a_answer == b_answer
        rows.append(Comparison(f"{qname} {qtype}", a_text, b_text, same))
    return rows


# --------------------------------------------------------------------------- dnsperf


@dataclass(frozen=True)
class Run:
    target: str
    round: int
    sent: int
    completed: int
    lost: int
    qps: float
    run_time: float
    latency_avg: float
    latency_max: float
    rcodes: str
    server_cpu: float
    client_cpu: float
    machine_cpu: float
    steal: float

    @property
    def other_cpu_share(self) -> float:
        """CPU used by neither the server nor dnsperf during the turn, in CPUs."""
        other = self.machine_cpu - self.server_cpu - self.client_cpu
        return max(other, 0.0) / self.run_time if self.run_time else float("nan")

    @property
    def cpu_us_per_query(self) -> float:
        return self.server_cpu / self.completed * 1e6 if self.completed else float("nan")

    @property
    def server_cpu_share(self) -> float:
        return self.server_cpu / self.run_time if self.run_time else float("nan")


def dnsperf_argv(
    binary: str, port: int, query_file: Path, duration: int, clients: int, outstanding: int
) -> list[str]:
    return [
        binary,
        "-s",
        HOST,
        "-p",
        str(port),
        "-d",
        str(query_file),
        "-l",
        str(duration),
        "-c",
        str(clients),
        "-q",
        str(outstanding),
        "-t",
        str(DNSPERF_TIMEOUT),
    ]


def _number(label: str, text: str) -> str:
    found = re.search(rf"^\s*{re.escape(label)}:?\s+([0-9.]+)", text, re.MULTILINE)
    if not found:
        raise BenchError(f"dnsperf output has no '{label}':\n{text}")
    return found.group(1)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_dnsperf(server: Server, argv: list[str], round_no: int, duration: int) -> Run:
    server.check_alive()
    cpu_before = cpu_seconds(server.pid)
    client_before = _children_cpu()
    machine_before, steal_before = machine_cpu_seconds()
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=duration + DNSPERF_TIMEOUT + 30,
        check=False,
    )
    client_cpu = _children_cpu() - client_before
    machine_after, steal_after = machine_cpu_seconds()
    server.check_alive()
    cpu_after = cpu_seconds(server.pid)
    out = done.stdout + done.stderr
    if done.returncode != 0:
        raise BenchError(f"dnsperf exited {done.returncode}:\n{out}")
    latency = re.search(r"Average Latency \(s\):\s+([0-9.]+).*max ([0-9.]+)", out)
    if not latency:
        raise BenchError(f"dnsperf output has no latency line:\n{out}")
    return Run(
        target=server.name,
        round=round_no,
        sent=int(_number("Queries sent", out)),
        completed=int(_number("Queries completed", out)),
        lost=int(_number("Queries lost", out)),
        qps=float(_number("Queries per second", out)),
        run_time=float(_number("Run time (s)", out)),
        latency_avg=float(latency.group(1)),
        latency_max=float(latency.group(2)),
        rcodes=_first_match(r"^\s*Response codes:\s+(.+)$", out, ""),
        server_cpu=cpu_after - cpu_before,
        client_cpu=client_cpu,
        machine_cpu=machine_after - machine_before,
        steal=steal_after - steal_before,
    )


# --------------------------------------------------------------------------- report


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def results_table(runs: list[Run], extra: tuple[str, list[str]] | None = None) -> list[str]:
    """One row per turn; `extra` adds a last column (its header, one cell per run)."""
    header, cells = extra if extra is not None else ("", [""] * len(runs))
    last, align = (f" {header} |", "---:|") if header else ("", "")
    lines = [
        "| target | round | queries/s | CPU µs/query | server CPU | dnsperf CPU | other CPU "
        "| avg latency ms | max latency ms | completed | lost |" + last,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + align,
    ]
    for run, cell in zip(runs, cells, strict=True):
        lines.append(
            f"| {run.target} | {run.round} | {run.qps:,.0f} | {run.cpu_us_per_query:,.1f} "
            f"| {run.server_cpu_share:.0%} | {run.client_cpu / run.run_time:.0%} "
            f"| {run.other_cpu_share:.0%} | {_ms(run.latency_avg)} | {_ms(run.latency_max)} "
            f"| {run.completed:,} | {run.lost:,} ({run.lost / max(run.sent, 1):.2%}) |"
            + (f" {cell} |" if header else "")
        )
    return lines


def _mean(runs: list[Run], key: Callable[[Run], float]) -> float:
    return statistics.fmean(key(run) for run in runs)


def ratios(runs: list[Run]) -> list[str]:
    a = [r for r in runs if r.target == "poisonproof"]
    b = [r for r in runs if r.target == "unbound"]
    qps_a, qps_b = _mean(a, lambda r: r.qps), _mean(b, lambda r: r.qps)
    cpu_a = _mean(a, lambda r: r.cpu_us_per_query)
    cpu_b = _mean(b, lambda r: r.cpu_us_per_query)
    lat_a, lat_b = _mean(a, lambda r: r.latency_avg), _mean(b, lambda r: r.latency_avg)
    return [
        "| measure (mean of rounds) | poisonproof | unbound | ours / unbound |",
        "|---|---:|---:|---:|",
        f"| queries/s | {qps_a:,.0f} | {qps_b:,.0f} | {qps_a / qps_b:.3f} "
        f"(unbound {qps_b / qps_a:,.1f}x faster) |",
        f"| CPU µs/query | {cpu_a:,.1f} | {cpu_b:,.1f} | {cpu_a / cpu_b:,.1f}x |",
        f"| avg latency ms | {_ms(lat_a)} | {_ms(lat_b)} | {lat_a / lat_b:,.1f}x |",
        f"| lost queries | {sum(r.lost for r in a):,} | {sum(r.lost for r in b):,} | |",
    ]


def observations(runs: list[Run], comparisons: list[Comparison], nproc: int) -> list[str]:
    """Plain statements derived from this run's numbers (nothing here is hard-coded)."""
    notes = []
    for target in ("poisonproof", "unbound"):
        mine = [r for r in runs if r.target == target]
        lost = sum(r.lost for r in mine)
        sent = sum(r.sent for r in mine)
        if lost:
            notes.append(f"- {target} lost {lost:,} of {sent:,} queries ({lost / sent:.2%}).")
        else:
            notes.append(f"- {target} answered every query dnsperf sent ({sent:,}).")
        share = max(r.server_cpu_share for r in mine)
        client = max(r.client_cpu / r.run_time for r in mine if r.run_time)
        if share >= 0.9:
            notes.append(
                f"- {target} used up to {share:.0%} of one CPU during a turn: it was the "
                "bottleneck (it is single-threaded here), so its queries/s is its capacity."
            )
        else:
            busy = max(r.machine_cpu / r.run_time for r in mine if r.run_time)
            if client >= 0.8:
                bound = f"dnsperf (up to {client:.0%} of a CPU)"
            elif busy >= 0.9 * nproc:
                bound = (
                    f"the machine (all {nproc} CPUs up to {busy / nproc:.0%} busy, with other "
                    "processes' work included)"
                )
            else:
                bound = "something other than CPU (neither it nor dnsperf was saturated)"
            notes.append(
                f"- {target} used at most {share:.0%} of one CPU during a turn: it was not "
                f"saturated, its queries/s here is bounded by {bound}, so it understates "
                "what the server can do; CPU µs/query is the fairer comparison."
            )
        spread = [r.qps for r in mine]
        if len(spread) > 1 and min(spread) > 0:
            notes.append(
                f"- {target} queries/s varied by {max(spread) / min(spread) - 1:.1%} "
                "between rounds."
            )
    client = max(r.client_cpu / r.run_time for r in runs if r.run_time)
    notes.append(
        f"- dnsperf itself used up to {client:.0%} of a CPU; it runs on the same "
        f"{nproc}-CPU machine, so client and server compete for cores."
    )
    busy = [r for r in runs if r.other_cpu_share > 0.1]
    if busy:
        worst = max(busy, key=lambda r: r.other_cpu_share)
        notes.append(
            f"- Other processes were busy during {len(busy)} of {len(runs)} turns (up to "
            f"{worst.other_cpu_share:.0%} of a CPU, round {worst.round} {worst.target}); "
            "those turns may read low."
        )
    else:
        notes.append("- Nothing else used more than 10% of a CPU during any turn.")
    steal = max(r.steal / r.run_time for r in runs if r.run_time)
    if steal > 0.01:
        notes.append(
            f"- This is a virtual machine: the hypervisor stole up to {steal:.0%} of a CPU "
            "during a turn (`steal` in /proc/stat)."
        )
    differing = [c for c in comparisons if not c.same]
    if differing:
        notes.append(
            f"- {len(differing)} of {len(comparisons)} queries get different answers "
            "(see above), so the servers do not do identical work per query."
        )
    return notes


def machine_lines(machine: Machine, after_loadavg: str) -> list[str]:
    return [
        f"- CPUs (nproc): {machine.nproc}",
        f"- CPU model: {machine.cpu_model}",
        f"- kernel: {machine.kernel}",
        f"- Python: {machine.python} (dnspython {machine.dnspython}, uvloop {machine.uvloop})",
        f"- dnsperf: {machine.dnsperf}",
        f"- unbound: {machine.unbound}",
        f"- load average (1/5/15 min) before the run: {machine.loadavg}; after: {after_loadavg}",
        f"- source measured: {machine.source}",
    ]


def report(
    machine: Machine,
    bench_command: str,
    perf_command: str,
    config: str,
    comparisons: list[Comparison],
    runs: list[Run],
    started: datetime.datetime,
) -> str:
    after = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    query_lines = "\n".join(f"{qname} {qtype}" for qname, qtype in QUERIES)
    compare_lines = [
        "| query | poisonproof | unbound | same answer |",
        "|---|---|---|---|",
        *(
            f"| {c.query} | {c.ours} | {c.unbound} | {'yes' if c.same else '**no**'} |"
            for c in comparisons
        ),
    ]
    rcode_lines = [f"- round {r.round}, {r.target}: {r.rcodes}" for r in runs]
    parts = [
        f"## {SECTION_TITLES['auth']}",
        "",
        "Our authoritative server (one asyncio/uvloop process) beside Unbound serving the",
        "same records from memory. The first time a question is asked our engine parses it",
        "and builds the reply with dnspython, and keeps the rendered reply; repeats, which",
        "is nearly all of what dnsperf sends once it has gone through the query file, are",
        "replayed from that reply cache with ID and question case patched, without",
        "dnspython. Every number in this section comes from the run of",
        f"{started:%Y-%m-%d %H:%M %Z}; `{bench_command}` regenerates it.",
        "",
        "### Machine",
        "",
        *machine_lines(machine, after),
        "",
        "### Method",
        "",
        f"Command: `{bench_command}`",
        "",
        "Both servers run on loopback on free ports, single-threaded (our server is one",
        "Python process; Unbound has `num-threads: 1`). They are started once, then dnsperf",
        "runs against them in alternating turns (poisonproof, unbound, poisonproof, ...) so",
        "slow drift on the machine hits both alike. dnsperf, for each turn (PORT varies):",
        "",
        "```",
        perf_command,
        "```",
        "",
        "No rate limit (`-Q` unset): dnsperf keeps up to `-q` queries outstanding and sends",
        "as fast as answers come back, so queries/s is the server's throughput at that",
        f"concurrency. A query unanswered after {DNSPERF_TIMEOUT}s counts as lost.",
        "**CPU µs/query** is the server process's utime+stime (from `/proc/PID/stat`, all",
        "threads, read before and after the turn, in ticks of 1/SC_CLK_TCK s) divided by the",
        "queries dnsperf completed; **server CPU** is that CPU time over the turn's run time",
        "(100% = one CPU), **dnsperf CPU** the same for dnsperf, and **other CPU** whatever",
        "else the machine did meanwhile (busy time in `/proc/stat`, without steal, minus both;",
        "it includes loopback packet processing in softirq that no process is charged for).",
        "With a fixed number of queries outstanding, average latency is mostly queueing:",
        "about outstanding / (queries/s), so it follows throughput rather than adding to it.",
        "",
        "The query file (dnsperf cycles through it):",
        "",
        "```",
        query_lines,
        "```",
        "",
        "Our server: `python -m poisonproof auth --zone "
        f"{ZONE_FILE.relative_to(ROOT)} --listen 127.0.0.1:PORT --ready-file F`.",
        "Unbound: `unbound -d -c unbound.conf` with this generated config (one `local-data`",
        "per record of the zone file, loaded with dnspython):",
        "",
        "<details><summary>unbound.conf</summary>",
        "",
        "```",
        config.rstrip(),
        "```",
        "",
        "</details>",
        "",
        "### Same data, same answers?",
        "",
        "Each query asked once of each server before the timed turns (RD clear).",
        "`an/ns/ar` counts records in the answer/authority/additional sections; the answers",
        "match when the rcode and the answer section are equal.",
        "",
        *compare_lines,
        "",
        "Unbound `local-data` is not a full authoritative server: it returns a CNAME without",
        "following it to its target (poisonproof returns the whole chain inside the zone, so",
        "it does more work for those queries), and it does not expand `*` wildcards (no",
        "wildcard name is in the query file). Rows marked **no** are where answers differ.",
        "",
        "### Results",
        "",
        *results_table(runs),
        "",
        *ratios(runs),
        "",
        "Response codes dnsperf saw:",
        "",
        *rcode_lines,
        "",
        "### Observations",
        "",
        *observations(runs, comparisons, machine.nproc),
        "",
    ]
    return "\n".join(parts)


# --------------------------------------------------------------------------- main


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Let SIGTERM unwind through `finally` blocks so the servers we started are stopped."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def need(tool: str, fallback: str, package: str | None = None) -> str:
    found = shutil.which(tool) or (fallback if Path(fallback).exists() else None)
    if not found:
        raise BenchError(f"{tool} not found (Debian: apt-get install {package or tool})")
    return found


# --------------------------------------------------------------------------- BENCHMARKS.md

DOCUMENT_HEADER = """# Benchmarks

Each section below is written by its own script from one run of it, and says when that
was and the command that regenerates it. `make bench` runs both scripts; each replaces
only its own section (between the `bench:` comment markers) and keeps the other.
"""


def write_section(path: Path, name: str, body: str, *, replaces_unmarked: bool = False) -> None:
    """Put `body` in section `name` of BENCHMARKS.md, leaving the other sections alone."""
    assert name in SECTION_TITLES
    from sections import write_section as write_named

    write_named(path, name, body)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="also write the report here (Markdown)")
    parser.add_argument("--duration", type=int, default=10, help="dnsperf -l per turn (s)")
    parser.add_argument("--rounds", type=int, default=2, help="turns per server")
    parser.add_argument("--clients", type=int, default=4, help="dnsperf -c")
    parser.add_argument("--outstanding", type=int, default=100, help="dnsperf -q")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.datetime.now().astimezone()
    python = sys.executable
    if python.startswith(str(ROOT)):
        python = os.path.relpath(python, ROOT)
    given = argv if argv is not None else sys.argv[1:]
    bench_command = shlex.join([python, "bench/auth_bench.py", *given])
    dnsperf = need("dnsperf", "/usr/bin/dnsperf")
    unbound_bin = need("unbound", "/usr/sbin/unbound")
    machine = describe_machine(dnsperf, unbound_bin)
    servers: list[Server] = []
    with sigterm_as_exit(), tempfile.TemporaryDirectory(prefix="auth-bench-") as tmp:
        workdir = Path(tmp)
        query_file = workdir / "queries.txt"
        query_file.write_text("".join(f"{qname} {qtype}\n" for qname, qtype in QUERIES))
        try:
            servers.append(ours(workdir))
            ub, config = unbound(workdir, unbound_bin)
            servers.append(ub)
            comparisons = compare_answers(servers[0].port, ub.port)
            runs: list[Run] = []
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
                    runs.append(run_dnsperf(server, perf, round_no, args.duration))
        finally:
            for server in servers:
                server.stop()
    shown = dnsperf_argv(
        "dnsperf", 0, Path("queries.txt"), args.duration, args.clients, args.outstanding
    )
    perf_command = shlex.join(shown).replace("-p 0", "-p PORT")
    text = report(machine, bench_command, perf_command, config, comparisons, runs, started)
    print()
    print("\n".join(results_table(runs)))
    print()
    print("\n".join(ratios(runs)))
    print()
    print("\n".join(observations(runs, comparisons, machine.nproc)))
    if args.write:
        write_section(args.write, "auth", text, replaces_unmarked=True)
        print(f"\nwrote the authoritative section of {args.write}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"auth_bench: {error}", file=sys.stderr)
        sys.exit(1)

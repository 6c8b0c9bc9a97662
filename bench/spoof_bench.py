"""The raw-socket spoofer's send rate beside a minimal C sendmmsg sender, in one run.

Compiles bench/spoof_baseline.c with `cc -O2` into a temporary directory, then sends the
same forged DNS reply (same bytes, same size, from 127.0.0.53:53 to a closed UDP port on
127.0.0.1) in alternating turns — C, Python, C, Python — of about two seconds each, so
slow drift on the machine hits both alike. Prints packets/s for every turn and the ratio
Python/C (total packets over total seconds per side), and exits non-zero when Python
reaches less than 50% of C. `--write BENCHMARKS.md` replaces the section between the
`<!-- bench:spoofer ... -->` markers.

Usage: python bench/spoof_bench.py [--seconds S] [--turns N] [--write BENCHMARKS.md]
Needs root (CAP_NET_RAW) and a C compiler.
Must never: send anywhere but loopback; every turn is bounded in packets and seconds.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.rrset
from sections import write_section as write_named

from poisonproof.lab.spoofer import ReplyTemplate, Spoofer

HERE = Path(__file__).resolve().parent
SOURCE = ("127.0.0.53", 53)
TARGET = "127.0.0.1"
MAX_PACKETS = 10**9  # the time bound ends every turn long before this
THRESHOLD = 0.5


def reply_payload() -> bytes:
    """A forged answer as a Kaminsky flood would send it: one A record, name compressed."""
    query = dns.message.make_query("x7f3.bank.example.", "A")
    reply = dns.message.make_response(query)
    reply.flags |= dns.flags.AA
    reply.answer.append(dns.rrset.from_text("x7f3.bank.example.", 300, "IN", "A", "6.6.6.6"))
    return reply.to_wire()


def closed_port() -> int:
    """A UDP port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((TARGET, 0))
        return probe.getsockname()[1]


def compile_baseline(directory: Path) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        sys.exit("no C compiler (cc or gcc) found; install one to run this benchmark")
    binary = directory / "spoof_baseline"
    subprocess.run([compiler, "-O2", "-o", str(binary), str(HERE / "spoof_baseline.c")], check=True)
    return binary


def cpu_times(who: int) -> tuple[float, float]:
    """(user, system) CPU seconds of this process or of its waited-for children."""
    usage = resource.getrusage(who)
    return usage.ru_utime, usage.ru_stime


def run_c(binary: Path, payload: bytes, port: int, seconds: float) -> dict[str, float]:
    user, system = cpu_times(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [
            str(binary),
            SOURCE[0],
            str(SOURCE[1]),
            TARGET,
            str(port),
            payload.hex(),
            str(MAX_PACKETS),
            str(seconds),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    ).stdout
    result = json.loads(out)
    user_after, system_after = cpu_times(resource.RUSAGE_CHILDREN)
    result["user"] = user_after - user
    result["system"] = system_after - system
    return result


def run_python(payload: bytes, port: int, seconds: float) -> dict[str, float]:
    template = ReplyTemplate(payload)
    user, system = cpu_times(resource.RUSAGE_SELF)
    with Spoofer(SOURCE, TARGET) as spoofer:
        stats = spoofer.flood(
            template,
            [port],
            itertools.cycle(range(65536)),
            max_packets=MAX_PACKETS,
            max_seconds=seconds,
        )
    user_after, system_after = cpu_times(resource.RUSAGE_SELF)
    return {
        "packets": stats.packets,
        "seconds": stats.seconds,
        "syscalls": stats.syscalls,
        "errors": stats.errors,
        "user": user_after - user,
        "system": system_after - system,
    }


def rate(turns: list[dict[str, float]]) -> float:
    return sum(t["packets"] for t in turns) / sum(t["seconds"] for t in turns)


def machine() -> dict[str, str]:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        cwd=HERE,
    ).stdout.strip()
    cc = shutil.which("cc") or shutil.which("gcc") or "cc"
    cc_version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    return {
        "commit": commit + (" + uncommitted changes" if dirty else ""),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": str(os.cpu_count()),
        "cpu_model": model.group(1).strip() if model else "unknown",
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cc": cc_version.splitlines()[0] if cc_version else "unknown",
    }


def markdown(
    turns: list[tuple[str, dict[str, float]]],
    c_rate: float,
    py_rate: float,
    size: int,
    seconds: float,
    command: str,
    info: dict[str, str],
) -> str:
    ratio = py_rate / c_rate
    lines = [
        "<!-- bench:spoofer begin -->",
        "## Raw-socket spoofer: Python vs a minimal C `sendmmsg` sender",
        "",
        f"Command: `{command}` "
        f"(commit {info['commit']}, {info['date']}, {info['cpus']} CPUs, {info['cpu_model']}, "
        f"{info['kernel']}, {info['python']}, {info['cc']}).",
        "",
        f"Both send the same forged DNS reply ({size} bytes on the wire: IPv4 + UDP + "
        f"{size - 28} bytes of DNS) from {SOURCE[0]}:{SOURCE[1]} to a closed UDP port on "
        f"{TARGET} through `socket(AF_INET, SOCK_RAW, IPPROTO_RAW)`, 1024 packets per "
        "`sendmmsg` call, the DNS ID changing per packet. C: `bench/spoof_baseline.c` "
        "built with `cc -O2`. Python: `poisonproof.lab.spoofer.Spoofer.flood` (IDs and "
        "ports patched into a preallocated ctypes buffer by strided memoryview writes, "
        "`sendmmsg` through ctypes). Turns alternate C, Python, … of "
        f"{seconds:g} s each in one run. User and system are the sender's CPU seconds; on "
        "loopback the kernel carries each packet up to UDP (which finds no socket and "
        "answers with a rate-limited ICMP port unreachable) in the sending thread, so the "
        "system time is nearly all of it and is the same work for both senders.",
        "",
        "| turn | sender | packets | seconds | packets/s | syscalls | errors | user s | system s |",
        "|---:|:---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, (who, t) in enumerate(turns, 1):
        lines.append(
            f"| {i} | {who} | {t['packets']:,} | {t['seconds']:.3f} | "
            f"{t['packets'] / t['seconds']:,.0f} | {t['syscalls']:,} | {t['errors']:,} | "
            f"{t['user']:.2f} | {t['system']:.2f} |"
        )
    lines += [
        "",
        f"C: {c_rate:,.0f} packets/s; Python: {py_rate:,.0f} packets/s; "
        f"Python/C = {ratio:.2f} (required: ≥ {THRESHOLD:.2f}: "
        f"{'met' if ratio >= THRESHOLD else 'NOT met'}).",
        "<!-- bench:spoofer end -->",
    ]
    return "\n".join(lines)


def write_section(path: Path, text: str) -> None:
    write_named(path, "spoofer", text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each turn")
    parser.add_argument("--turns", type=int, default=2, help="turns per sender (alternating)")
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    if not 0 < args.seconds <= 60:
        parser.error("--seconds must be in (0, 60]")
    payload = reply_payload()
    port = closed_port()
    turns: list[tuple[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        binary = compile_baseline(Path(tmp))
        for _ in range(args.turns):
            for who in ("C", "Python"):
                if who == "C":
                    result = run_c(binary, payload, port, args.seconds)
                else:
                    result = run_python(payload, port, args.seconds)
                turns.append((who, result))
                speed = result["packets"] / result["seconds"]
                print(json.dumps({"sender": who, **result, "rate": speed}), flush=True)
    c_rate = rate([t for who, t in turns if who == "C"])
    py_rate = rate([t for who, t in turns if who == "Python"])
    command = ".venv/bin/python bench/spoof_bench.py"
    if args.seconds != 2.0:
        command += f" --seconds {args.seconds:g}"
    if args.turns != 2:
        command += f" --turns {args.turns}"
    command += " --write BENCHMARKS.md"
    text = markdown(turns, c_rate, py_rate, len(payload) + 28, args.seconds, command, machine())
    print(text)
    print(f"C {c_rate:,.0f}/s  Python {py_rate:,.0f}/s  ratio {py_rate / c_rate:.3f}")
    if args.write:
        write_section(args.write, text)
    return 0 if py_rate >= THRESHOLD * c_rate else 1


if __name__ == "__main__":
    sys.exit(main())

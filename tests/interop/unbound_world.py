"""A lab DNS world for the Unbound interop test; runs INSIDE a fresh network namespace.

Usage (what tests/interop/test_unbound_hierarchy.py runs):

    unshare -rn -- python tests/interop/unbound_world.py --workdir DIR \
        --unbound /usr/sbin/unbound --ip /usr/sbin/ip NAME/TYPE [NAME/TYPE ...]

Inside the namespace it brings `lo` up, serves the bundled lab zones on 127.53.0.x port 53
with `poisonproof.demo.start_lab_servers` (Unbound follows referrals to port 53 only),
starts a real Unbound in the foreground with `stub-zone "." -> 127.53.0.1`, asks Unbound
each NAME/TYPE, and prints one JSON object on stdout: Unbound's replies, how many queries
each of our servers answered, Unbound's cache dump and its log. Everything it starts is
stopped before it exits; Unbound also dies with this process (PR_SET_PDEATHSIG).

Must never run in the host's network namespace: it refuses unless `lo` is the only
interface (a namespace made by `unshare -n`), so port 53 and all traffic stay private.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from poisonproof.demo import LAB_SERVERS, ROOT_SERVER, start_lab_servers
from poisonproof.net.real import RealNetwork

UNBOUND_HOST = "127.0.0.1"
UNBOUND_PORT = 5399
AUTH_PORT = 53  # Unbound sends queries to name servers on port 53 only

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


def unbound_config(workdir: Path) -> str:
    return f"""\
server:
    verbosity: 1
    interface: {UNBOUND_HOST}
    port: {UNBOUND_PORT}
    do-ip4: yes
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    do-daemonize: no
    num-threads: 1
    so-reuseport: no
    outgoing-range: 64
    num-queries-per-thread: 32
    username: ""
    chroot: ""
    directory: "{workdir}"
    pidfile: "{workdir}/unbound.pid"
    use-syslog: no
    logfile: ""
    log-time-ascii: yes
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    module-config: "iterator"
    harden-referral-path: no
    qname-minimisation: yes
    prefetch: no
    minimal-responses: no

stub-zone:
    name: "."
    stub-addr: {ROOT_SERVER}

remote-control:
    control-enable: yes
    control-interface: "{workdir}/control.sock"
"""


def _record_list(section: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": rrset.name.to_text(),
            "type": dns.rdatatype.to_text(rrset.rdtype),
            "ttl": rrset.ttl,
            "rdata": rdata.to_text(),
        }
        for rrset in section
        for rdata in rrset
    ]


def describe(qname: str, qtype: str, reply: dns.message.Message) -> dict[str, Any]:
    return {
        "qname": qname,
        "qtype": qtype,
        "rcode": dns.rcode.to_text(reply.rcode()),
        "flags": dns.flags.to_text(reply.flags).split(),
        "answer": _record_list(reply.answer),
        "authority": _record_list(reply.authority),
    }


async def ask_unbound(qname: str, qtype: str, timeout: float = 5.0) -> dns.message.Message:
    query = dns.message.make_query(qname, qtype, use_edns=0)  # RD set: a stub's question
    return await dns.asyncquery.udp(query, UNBOUND_HOST, timeout=timeout, port=UNBOUND_PORT)


async def wait_for_unbound(proc: asyncio.subprocess.Process, log: Path, deadline: float) -> None:
    """Until Unbound answers a question it serves itself (its default `localhost.` zone)."""
    while True:
        if proc.returncode is not None:
            raise RuntimeError(f"unbound exited with {proc.returncode}:\n{log.read_text()}")
        with contextlib.suppress(dns.exception.Timeout, OSError):
            await ask_unbound("localhost.", "A", timeout=0.5)
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"unbound did not start answering:\n{log.read_text()}")
        await asyncio.sleep(0.1)


async def stop_process(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def world(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir)
    conf = workdir / "unbound.conf"
    conf.write_text(unbound_config(workdir))
    checked = subprocess.run(
        [args.unbound_checkconf, str(conf)], capture_output=True, text=True, timeout=10
    )
    if checked.returncode != 0:
        raise RuntimeError(f"unbound-checkconf: {checked.stdout}{checked.stderr}")

    network = RealNetwork()
    servers = await start_lab_servers(network, AUTH_PORT)
    log = workdir / "unbound.log"
    unbound = None
    result: dict[str, Any] = {}
    try:
        with log.open("wb") as log_file:
            unbound = await asyncio.create_subprocess_exec(
                args.unbound,
                "-d",
                "-c",
                str(conf),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        await wait_for_unbound(unbound, log, time.monotonic() + 15)

        replies = []
        for spec in args.questions:
            qname, qtype = spec.rsplit("/", 1)
            replies.append(describe(qname, qtype, await ask_unbound(qname, qtype)))
        result["replies"] = replies
        result["server_queries"] = {
            ip: server.engine.stats["queries"]
            for ip, server in zip(LAB_SERVERS, servers, strict=True)
        }
        dump = await asyncio.create_subprocess_exec(
            args.unbound_control,
            "-c",
            str(conf),
            "dump_cache",
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(dump.communicate(), 10)
        result["cache_dump"] = out.decode(errors="replace")
        result["cache_dump_rc"] = dump.returncode
    finally:
        if unbound is not None:
            await stop_process(unbound)
        for server in servers:
            await server.stop(quiet=True)
    result["unbound_log"] = log.read_text(errors="replace")
    result["unbound_rc"] = unbound.returncode
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--unbound", default="unbound")
    parser.add_argument("--unbound-checkconf", default="unbound-checkconf")
    parser.add_argument("--unbound-control", default="unbound-control")
    parser.add_argument("--ip", default="ip")
    parser.add_argument("questions", nargs="+", metavar="NAME/TYPE")
    args = parser.parse_args()

    _check_private_namespace()
    subprocess.run([args.ip, "link", "set", "lo", "up"], check=True, timeout=10)
    result = asyncio.run(world(args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

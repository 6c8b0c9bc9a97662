"""Our validating resolver and a validating Unbound asked the same questions about the
signed lab world; runs INSIDE a fresh network namespace.

Usage (what tests/interop/test_dnssec_comparison.py runs):

    unshare -rn -- python tests/interop/dnssec_world.py --workdir DIR \
        --zone-dir SIGNED_DIR --trust-anchor SIGNED_DIR/trust-anchor.ds \
        --questions QUESTIONS.json --unbound /usr/sbin/unbound --ip /usr/sbin/ip \
        [--unbound-checkconf PATH] [--parallel N]

QUESTIONS.json is `{"questions": [[name, type], ...], "cd": [[name, type], ...]}`.

Inside the namespace it brings `lo` up, serves the signed world's zone files from
SIGNED_DIR (`python -m poisonproof.lab.world serve --zone-dir`, every 127.0.0.x server
on port 53) and starts two validating recursive resolvers on 127.0.0.1, each given the
world's root hints and the same root trust anchor (zone-file DS):

  ours     python -m poisonproof serve --root-hints HINTS --trust-anchor-file ANCHOR
           --query-localhost on
  unbound  /usr/sbin/unbound -d, `module-config: "validator iterator"`,
           `trust-anchor-file: ANCHOR`, `root-hints: HINTS`, `do-not-query-localhost: no`

then asks both every question with DO set (RD=1, UDP, TCP when truncated, a few at a
time), and afterwards asks again with CD set every question of the `cd` list plus every
question either resolver answered SERVFAIL. It prints one JSON object on stdout: per
question each resolver's rcode, flags, extended errors and answer, for the DO pass
(`results`) and the CD pass (`cd_results`), plus the logs. Judging is the test's business.

Everything it starts is stopped before it exits (SIGTERM, then SIGKILL); each child also
gets SIGKILL if this helper dies (PR_SET_PDEATHSIG), and the namespace dies with it.
Must never run in the host's network namespace (see comparison_world.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# Run as a script: this file's directory is on sys.path, so the sibling helper imports.
import comparison_world  # type: ignore[import-not-found]
import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
from comparison_world import (  # type: ignore[import-not-found]
    Child,
    _check_private_namespace,
    wait_until,
)

from poisonproof.lab.world import lab_world

HOST = "127.0.0.1"
PORTS = {"ours": 5311, "unbound": 5312}
RESOLVERS = tuple(PORTS)
WORLD_PORT = 53  # resolvers follow referrals to port 53 only
PARALLEL = 8
QUERY_TIMEOUT = 8.0  # seconds for one question (a bogus zone makes resolvers retry)


def unbound_config(workdir: Path, hints: Path, anchor: Path) -> str:
    """The comparison harness's Unbound, validating from `anchor`."""
    return comparison_world.unbound_config(
        workdir,
        hints,
        port=PORTS["unbound"],
        modules="validator iterator",
        extra=(
            f'    trust-anchor-file: "{anchor}"\n'
            "    harden-dnssec-stripped: yes\n"
            "    val-log-level: 2\n"
            "    ede: yes\n"
        ),
    )


def _records(section: list[Any]) -> list[list[Any]]:
    return [
        [rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype), rrset.ttl, rdata.to_text()]
        for rrset in section
        for rdata in rrset
    ]


async def ask(port: int, qname: str, qtype: str, cd: bool) -> dict[str, Any]:
    query = dns.message.make_query(qname, qtype, want_dnssec=True, payload=1232)  # RD, DO
    if cd:
        query.flags |= dns.flags.CD
    started = time.monotonic()
    result: dict[str, Any] = {}
    try:
        reply = await dns.asyncquery.udp(query, HOST, timeout=QUERY_TIMEOUT, port=port)
        if reply.flags & dns.flags.TC:
            result["tcp"] = True
            reply = await dns.asyncquery.tcp(query, HOST, timeout=QUERY_TIMEOUT, port=port)
    except dns.exception.Timeout:
        result.update(rcode="TIMEOUT", flags=[], answer=[], ede=[])
    except (OSError, dns.exception.DNSException) as error:
        result.update(rcode=f"ERROR {error!r}", flags=[], answer=[], ede=[])
    else:
        result.update(
            rcode=dns.rcode.to_text(reply.rcode()),
            flags=dns.flags.to_text(reply.flags).split(),
            answer=[r for r in _records(reply.answer) if r[1] != "RRSIG"],
            ede=[f"{e.code}: {e.text or ''}" for e in reply.extended_errors()],
        )
    result["ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


async def ask_all(questions: list[list[str]], parallel: int, cd: bool) -> list[dict[str, Any]]:
    """Every question of both resolvers, `parallel` questions at a time, in list order."""
    results: list[dict[str, Any]] = [{"qname": q, "qtype": t} for q, t in questions]
    limit = asyncio.Semaphore(parallel)

    async def one(index: int) -> None:
        qname, qtype = questions[index]
        async with limit:
            replies = await asyncio.gather(
                *(ask(PORTS[name], qname, qtype, cd) for name in RESOLVERS)
            )
        results[index].update(zip(RESOLVERS, replies, strict=True))

    await asyncio.gather(*(one(index) for index in range(len(questions))))
    return results


def answers_on(port: int) -> Any:
    """True once a resolver answers `. SOA` with CD set: it reached the world's root
    (unvalidated, so a validator that fails everything still counts as started)."""

    def probe() -> bool:
        query = dns.message.make_query(".", "SOA", want_dnssec=True)
        query.flags |= dns.flags.CD
        try:
            reply = dns.query.udp(query, HOST, timeout=1, port=port)
        except (dns.exception.Timeout, OSError):
            return False
        return reply.rcode() == dns.rcode.NOERROR and bool(reply.answer)

    return probe


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir).absolute()
    wanted = json.loads(Path(args.questions).read_text(encoding="utf-8"))
    questions: list[list[str]] = wanted["questions"]
    hints = workdir / "root.hints"
    hints.write_text(lab_world().root_hints_text(), encoding="utf-8")
    anchor = Path(args.trust_anchor).absolute()

    unbound_conf = workdir / "unbound.conf"
    unbound_conf.write_text(unbound_config(workdir, hints, anchor), encoding="utf-8")
    if args.unbound_checkconf:
        checked = subprocess.run(
            [args.unbound_checkconf, str(unbound_conf)], capture_output=True, text=True, timeout=10
        )
        if checked.returncode != 0:
            raise RuntimeError(f"unbound-checkconf: {checked.stdout}{checked.stderr}")

    state_dir = workdir / "world"
    state_dir.mkdir(mode=0o700, exist_ok=True)
    children: list[Child] = []
    result: dict[str, Any] = {"questions": len(questions)}
    try:
        world = Child(
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
                "--zone-dir",
                str(Path(args.zone_dir).absolute()),
            ],  # fmt: skip
            workdir / "world.log",
        )
        children.append(world)
        wait_until(world, (state_dir / "ready.json").exists, "the world serving")

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
                "--trust-anchor-file",
                str(anchor),
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
        wait_until(ours, lambda: ready.exists() and bool(ready.read_text().strip()), "ready file")
        for child in (ours, unbound):
            wait_until(child, answers_on(PORTS[child.name]), "answering `. SOA`")

        asked = time.monotonic()
        results = asyncio.run(ask_all(questions, args.parallel, cd=False))
        result["results"] = results
        cd_wanted = {tuple(q) for q in wanted.get("cd", [])}
        cd_wanted |= {
            (r["qname"], r["qtype"])
            for r in results
            if "SERVFAIL" in (r["ours"]["rcode"], r["unbound"]["rcode"])
        }
        cd_questions = [list(q) for q in dict.fromkeys(map(tuple, questions)) if q in cd_wanted]
        cd_questions += [list(q) for q in sorted(cd_wanted - {tuple(q) for q in questions})]
        result["cd_results"] = asyncio.run(ask_all(cd_questions, args.parallel, cd=True))
        result["seconds"] = round(time.monotonic() - asked, 2)
        for child in children:
            child.check_alive()
    finally:
        result["exit"] = {}
        for child in reversed(children):
            result["exit"][child.name] = child.stop()
        result["logs"] = {child.name: child.log(200_000) for child in children}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--zone-dir", required=True, help="the signed world's zone files")
    parser.add_argument("--trust-anchor", required=True, help="the root DS, zone-file format")
    parser.add_argument("--questions", required=True, help="JSON: questions and cd")
    parser.add_argument("--unbound", default="unbound")
    parser.add_argument("--unbound-checkconf", default="")
    parser.add_argument("--ip", default="ip")
    parser.add_argument("--parallel", type=int, default=PARALLEL, help="questions in flight")
    args = parser.parse_args()

    _check_private_namespace()
    subprocess.run([args.ip, "link", "set", "lo", "up"], check=True, timeout=10)
    with contextlib.suppress(BrokenPipeError):
        json.dump(run(args), sys.stdout)
        sys.stdout.write("\n")


if __name__ == "__main__":
    main()

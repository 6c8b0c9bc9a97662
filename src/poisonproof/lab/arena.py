"""The attack arena: a small DNS world, a victim resolver and an attacker, simulated.

Owns: writing the arena's zones for the trial parameters (root, `example.`, the victim
`bank.example.` on N servers, the attacker's own `attacker.example.` and the attacker's
fake `bank.example.`), signing them when asked (`ArenaParams.signed`: the root, `net.`,
`example.` and, unless `victim_signed` is off, `bank.example.`, with DS records at each
parent, through `poisonproof.lab.signed_world`; the attacker's zones and the forwarded
`corp.example.` stay unsigned) and giving the resolver the root's trust anchor, the
simulated hosts and links (the race window is the RTT between the resolver and the
victim's servers), starting every server, and the honest client's view at the end.
Must never: decide how to attack (that is `poisonproof.lab.attacks`) or run outside the
simulated network.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import dns.message
import dns.name
import dns.rdatatype

from poisonproof.auth.zones import ServedZone, load_zone
from poisonproof.net.base import Address
from poisonproof.net.sim import DEFAULT_EPOCH, Link, Simulation
from poisonproof.resolver.anchors import TrustAnchors
from poisonproof.resolver.defenses import Defenses
from poisonproof.resolver.frontend import Frontend
from poisonproof.resolver.hints import RootHints
from poisonproof.resolver.iterator import Resolver, ResolverConfig
from poisonproof.resolver.outgoing import Entropy
from poisonproof.server.auth_server import AuthServer
from poisonproof.server.resolver_server import ResolverServer

ROOT_IP = "198.41.0.4"
TLD_IP = "192.5.6.30"
ATTACKER_IP = "203.0.113.66"
RESOLVER_IP = "192.0.2.53"
CLIENT_IP = "192.0.2.10"
MAIL_IP = "192.0.2.25"
FORWARDER_IP = "10.1.1.1"
"""The resolver forwards corp.example to this server (a company's internal DNS)."""
FORWARDED = dns.name.from_text("corp.example.")
"""A mail service on the victim's network: it may use the resolver; the attacker may not."""
MAIL_NAMES = 400
"""Names m0..m399.attacker.example, each with an MX into the victim zone (indirect trigger)."""
REAL_WWW = "192.0.2.80"
VICTIM = dns.name.from_text("bank.example.")


def bank_server_ip(index: int) -> str:
    return f"198.51.100.{index + 1}"


@dataclass(frozen=True)
class ArenaParams:
    servers: int = 1
    """N: authoritative servers of the victim zone."""
    window: float = 0.1
    """W: seconds between the resolver's query to a victim server and the real answer."""
    ttl: int = 300
    """TTL of the victim zone's records (www, the NS set and its glue)."""
    client_latency: float = 0.001
    attacker_latency: float = 0.001
    signed: bool = False
    """DNSSEC: sign the root, `net.`, `example.` (and the victim zone, see `victim_signed`)
    and give the resolver the root's trust anchor. The attacker's zones stay unsigned."""
    victim_signed: bool = True
    """With `signed`: bank.example is signed and `example.` publishes its DS (a validating
    resolver finds forged victim data bogus). False: bank.example is unsigned and
    `example.`'s signed NSEC proves it has no DS, so it is insecure (nothing to check)."""

    @property
    def dnssec_label(self) -> str:
        """`unsigned`, `signed` or `signed, victim unsigned`: for tables and reports."""
        if not self.signed:
            return "unsigned"
        return "signed" if self.victim_signed else "signed, victim unsigned"

    def key(self) -> dict[str, object]:
        """The fields a trial record names the arena by (`arena_` + field). The signing
        fields appear only for a signed arena, so records made before they existed still
        match (and resume) the unsigned settings they were made for."""
        fields = dataclasses.asdict(self)
        if not self.signed:
            del fields["signed"], fields["victim_signed"]
        return {f"arena_{k}": v for k, v in fields.items()}


def zone_texts(params: ArenaParams) -> dict[str, str]:
    n = params.servers
    ns_lines = "\n".join(f"bank NS ns{i + 1}.bank" for i in range(n))
    glue = "\n".join(f"ns{i + 1}.bank A {bank_server_ip(i)}" for i in range(n))
    bank_ns = "\n".join(f"@ NS ns{i + 1}" for i in range(n))
    bank_glue = "\n".join(f"ns{i + 1} A {bank_server_ip(i)}" for i in range(n))
    ttl = params.ttl
    return {
        "root.zone": (
            "$ORIGIN .\n$TTL 86400\n@ SOA a.root-servers.net. h.root-servers.net. 1 2 3 4 86400\n"
            "@ NS a.root-servers.net.\nnet. NS a.root-servers.net.\n"
            f"a.root-servers.net. A {ROOT_IP}\nexample. NS a.nic.example.\n"
            f"a.nic.example. A {TLD_IP}\n"
        ),
        "net.zone": (
            "$ORIGIN net.\n$TTL 86400\n@ SOA a.root-servers h 1 2 3 4 86400\n"
            f"@ NS a.root-servers.net.\na.root-servers A {ROOT_IP}\n"
        ),
        "example.zone": (
            "$ORIGIN example.\n$TTL 86400\n@ SOA a.nic h.nic 1 2 3 4 3600\n@ NS a.nic\n"
            f"a.nic A {TLD_IP}\n{ns_lines}\n{glue}\nattacker NS ns.attacker\n"
            f"ns.attacker A {ATTACKER_IP}\n"
        )
        .replace("bank NS", f"bank {ttl} NS")
        .replace("bank A", f"bank {ttl} A"),
        "bank.example.zone": (
            f"$ORIGIN bank.example.\n$TTL {ttl}\n@ SOA ns1 h 1 3600 900 1209600 {ttl}\n"
            f"{bank_ns}\n{bank_glue}\nwww A {REAL_WWW}\nmail A 192.0.2.25\n@ MX 10 mail\n"
        ),
        "attacker.example.zone": (
            "$ORIGIN attacker.example.\n$TTL 60\n@ SOA ns h 1 3600 900 1209600 60\n@ NS ns\n"
            f"ns A {ATTACKER_IP}\n@ MX 10 mail.bank.example.\n"
            + "".join(f"m{i} MX 10 x{i:05d}.bank.example.\n" for i in range(MAIL_NAMES))
        ),
        "corp.example.zone": (
            "$ORIGIN corp.example.\n$TTL 300\n@ SOA ns h 1 3600 900 1209600 300\n@ NS ns\n"
            f"ns A {FORWARDER_IP}\nintranet A 10.1.1.80\n"
        ),
        "fake-bank.example.zone": (
            "$ORIGIN bank.example.\n$TTL 86400\n@ SOA ns.attacker.example. h 1 2 3 4 60\n"
            f"@ NS ns.attacker.example.\nwww A {ATTACKER_IP}\n*.bank.example. A {ATTACKER_IP}\n"
            f"mail A {ATTACKER_IP}\n"
        ),
    }


SIGNED_FILES = ("root.zone", "net.zone", "example.zone", "bank.example.zone")
"""The zones `ArenaParams.signed` signs (bank.example only with `victim_signed`)."""
UNSIGNED_FILES = ("attacker.example.zone", "corp.example.zone")
"""Zones in the tree that stay unsigned: the attacker's (no DS at `example.`) and the
company zone the resolver forwards (not delegated at all: a private zone, which the
resolver is told not to validate, as `domain-insecure` does for Unbound)."""
SIGNING_EPOCH = DEFAULT_EPOCH
"""The simulated wall clock starts here (`Simulation`'s default epoch): signatures are
valid from an hour before it for `signed_world.SIGNATURE_LIFETIME_DAYS`."""


class _ArenaZoneSource:
    """The arena's real zones (not the attacker's fake bank.example) for `sign_world`."""

    def __init__(self, texts: dict[str, str], directory: Path) -> None:
        self._texts = texts
        self._dir = directory
        for name in (*SIGNED_FILES, *UNSIGNED_FILES):
            (directory / name).write_text(texts[name])

    def load_zones(self) -> dict[str, ServedZone]:
        return {name: load_zone(self._dir / name) for name in (*SIGNED_FILES, *UNSIGNED_FILES)}

    def zone_text(self, file_name: str) -> str:
        return self._texts[file_name]


_SIGNING_DIR: tempfile.TemporaryDirectory[str] | None = None
_SIGNED: dict[tuple[tuple[tuple[str, str], ...], bool], tuple[dict[str, str], str]] = {}


def signed_zone_texts(params: ArenaParams) -> tuple[dict[str, str], str]:
    """The arena's zone texts with the DNSSEC zones signed, and the root's DS (the trust
    anchor, one zone-file line). Signed once per zone texts and `victim_signed` per
    process (keys are kept for the process, so the trust anchor stays the same)."""
    global _SIGNING_DIR
    texts = zone_texts(params)
    cache_key = (tuple(sorted(texts.items())), params.victim_signed)
    if cache_key in _SIGNED:
        return _SIGNED[cache_key]
    from poisonproof.lab.signed_world import sign_world

    if _SIGNING_DIR is None:
        _SIGNING_DIR = tempfile.TemporaryDirectory(prefix="poisonproof-arena-keys-")
    base = Path(_SIGNING_DIR.name)
    with tempfile.TemporaryDirectory(prefix="source-", dir=base) as source:
        unsigned = ["attacker.example.", FORWARDED.to_text()]
        if not params.victim_signed:
            unsigned.append(VICTIM.to_text())
        signed = sign_world(
            _ArenaZoneSource(texts, Path(source)),
            base / "signed",
            unsigned=unsigned,
            now=datetime.datetime.fromtimestamp(SIGNING_EPOCH, datetime.UTC),
        )
        out = dict(texts)
        for zone in signed.zones.values():
            out[zone.file_name] = zone.path.read_text(encoding="utf-8")
    _SIGNED[cache_key] = (out, signed.root_ds)
    return out, signed.root_ds


class ZoneFiles:
    """The arena's zone files, written once per parameter set (signed when it says so)."""

    def __init__(self, params: ArenaParams) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="poisonproof-arena-")
        self.path = Path(self._dir.name)
        self.signed = params.signed
        self.victim_signed = params.signed and params.victim_signed
        self.trust_anchor: str | None = None
        """The root's DS (zone-file line) when the zones are signed."""
        texts = zone_texts(params)
        if params.signed:
            texts, self.trust_anchor = signed_zone_texts(params)
        for name, text in texts.items():
            (self.path / name).write_text(text)

    def anchors(self) -> TrustAnchors | None:
        """The resolver's trust anchors: the root's DS, and no validation below the
        forwarded private zone; None for unsigned zones (the resolver validates nothing)."""
        if self.trust_anchor is None:
            return None
        anchors = TrustAnchors()
        anchors.add_text([self.trust_anchor], source="the arena's root")
        anchors.add_insecure(FORWARDED)
        return anchors

    def __getitem__(self, name: str) -> str:
        return str(self.path / name)

    def cleanup(self) -> None:
        self._dir.cleanup()


@dataclass
class Arena:
    """One trial's world, running on `sim`."""

    sim: Simulation
    params: ArenaParams
    defenses: Defenses
    resolver: Resolver
    frontend: Frontend
    servers: list[AuthServer] = field(default_factory=list)
    resolver_server: ResolverServer | None = None
    attacker_server: AuthServer | None = None
    _mail_tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def victim_servers(self) -> list[Address]:
        return [(bank_server_ip(i), 53) for i in range(self.params.servers)]

    @property
    def now(self) -> float:
        return self.sim.loop.time()

    async def ask(
        self, name: str, rdtype: str = "A", source: str = CLIENT_IP, *, dnssec: bool = False
    ) -> dns.message.Message | None:
        """An honest (or attacking) client's question to the resolver (with `dnssec`: the
        DO bit, asking for AD and signatures); None on timeout."""
        query = dns.message.make_query(name, rdtype, want_dnssec=dnssec)
        query.id = random.Random(self.sim.loop.time()).getrandbits(16)
        port = 20000 + int(self.sim.loop.time() * 1000) % 40000
        try:
            wire, _ = await self.sim.network.udp_exchange(
                query.to_wire(), (RESOLVER_IP, 53), timeout=30, source=(source, port)
            )
        except Exception:
            return None
        return dns.message.from_wire(wire)

    def send_query(self, name: str, source: str = ATTACKER_IP) -> None:
        """Fire a question at the resolver without waiting for the answer (a trigger)."""
        query = dns.message.make_query(name, "A")
        self.sim.network.send((source, 53000), (RESOLVER_IP, 53), query.to_wire())

    async def victim_view(self) -> list[str]:
        """What an honest client gets for www.bank.example once the real TTL has passed."""
        await self.sim_sleep(self.params.ttl + 1)
        reply = await self.ask("www.bank.example")
        if reply is None:
            return []
        return [
            r.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for r in rrset
        ]

    async def sim_sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def mail_service(self, data: bytes, peer: Address, via: object) -> None:
        """A datagram naming a domain is 'mail to someone@domain': the service looks up the
        domain's MX, then the address of each mail exchanger (as any MTA would)."""
        domain = data.decode("ascii", "replace").strip()
        task = asyncio.ensure_future(self._deliver_mail(domain))
        self._mail_tasks.add(task)
        task.add_done_callback(self._mail_tasks.discard)

    async def _deliver_mail(self, domain: str) -> None:
        reply = await self.ask(domain, "MX", source=MAIL_IP)
        if reply is None:
            return
        for rrset in reply.answer:
            if rrset.rdtype == dns.rdatatype.MX:
                for mx in rrset:
                    await self.ask(mx.exchange.to_text(), "A", source=MAIL_IP)  # type: ignore[attr-defined]

    async def stop(self) -> None:
        for task in list(self._mail_tasks):
            task.cancel()
        if self.resolver_server is not None:
            await self.resolver_server.stop(quiet=True)
        for server in self.servers:
            await server.stop(quiet=True)


async def build_arena(
    sim: Simulation,
    params: ArenaParams,
    defenses: Defenses,
    zones: ZoneFiles,
    seed: int,
    *,
    open_resolver: bool = True,
) -> Arena:
    """The arena; with `open_resolver` False only the client and the mail service may ask."""
    if zones.signed != params.signed:
        raise ValueError("the zone files were not written for these arena parameters")
    net = sim.network
    for i in range(params.servers):
        net.set_link(RESOLVER_IP, bank_server_ip(i), Link(latency=params.window / 2))
    net.set_link(RESOLVER_IP, FORWARDER_IP, Link(latency=params.window / 2))
    net.set_link(CLIENT_IP, RESOLVER_IP, Link(latency=params.client_latency))
    net.set_link(MAIL_IP, RESOLVER_IP, Link(latency=params.client_latency))
    net.set_link(ATTACKER_IP, MAIL_IP, Link(latency=params.client_latency))
    net.set_link(ATTACKER_IP, RESOLVER_IP, Link(latency=params.attacker_latency))
    hints = RootHints(
        dns.rrset.from_text(".", 3_600_000, "IN", "NS", "a.root-servers.net."),
        {dns.name.from_text("a.root-servers.net."): [ROOT_IP]},
    )
    resolver = Resolver(
        clock=net.clock,
        hints=hints,
        defenses=defenses,
        entropy=Entropy(random.Random(seed), random.Random(seed + 1)),
        config=ResolverConfig(
            outgoing_v4=RESOLVER_IP,
            ipv6=False,
            forwarders=((FORWARDED, ((FORWARDER_IP, 53),)),),
        ),
        anchors=zones.anchors(),
    )
    allow = ("0.0.0.0/0",) if open_resolver else (f"{CLIENT_IP}/32", f"{MAIL_IP}/32")
    frontend = Frontend(resolver, allow, fast_path=True)
    arena = Arena(sim, params, defenses, resolver, frontend)
    layout = [
        (ROOT_IP, ["root.zone", "net.zone"]),
        (TLD_IP, ["example.zone"]),
        *[(bank_server_ip(i), ["bank.example.zone"]) for i in range(params.servers)],
        (FORWARDER_IP, ["corp.example.zone"]),
    ]
    for address, files in layout:
        server = AuthServer(net, [zones[f] for f in files], [(address, 53)])
        await server.start()
        arena.servers.append(server)
    attacker = AuthServer(
        net, [zones["attacker.example.zone"], zones["fake-bank.example.zone"]], [(ATTACKER_IP, 53)]
    )
    await attacker.start()
    arena.servers.append(attacker)
    arena.attacker_server = attacker
    arena.resolver_server = ResolverServer(net, frontend, [(RESOLVER_IP, 53)])
    await arena.resolver_server.start()
    await net.serve_udp((MAIL_IP, 25), arena.mail_service)
    return arena


def with_port_pool(defenses: Defenses, port_pool: int | None) -> Defenses:
    if port_pool is None:
        return defenses
    return dataclasses.replace(defenses, port_pool=port_pool)

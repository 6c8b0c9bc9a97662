"""Real resolvers as poisoning targets: configure, start, ask, dump and count one of them.

Owns: for each supported resolver (`TARGETS`: ours, Unbound, BIND 9, Knot Resolver,
PowerDNS Recursor, dnsmasq) the configuration that makes it resolve the lab world from
its root hints - stock (the software's own defences left as shipped) or weakened (one
fixed UDP source port and 0x20 off, where the software allows; `supports_weakened` says
what each can and cannot do) - starting it in the foreground with its log, pid file,
cache and control socket in a working directory, waiting until it answers, asking it
questions, dumping its cache where it can, reading its own counters of received UDP
datagrams, and describing what its installed version does against forged answers.
`udp_counters` reads the kernel's UDP counters of a network namespace, for callers whose
target keeps no such counter (and to see the datagrams a full socket buffer dropped).

Must never: daemonize, chroot or install anything; write outside the working directory
(the root hints and trust anchor are only read; `unbound_knows_option` writes a probe
file into a temporary directory it removes); configure a resolver to listen on, or accept
clients from, anything but the address it is given and the lab's networks (127.0.0.0/8,
10.53.0.0/16); signal a process it did not start; or choose where a resolver runs - that
is the caller's `popen` (default: this process's namespaces; `LabNet.popen` for a lab
host), so port 53 is only ever bound where the caller put the target.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import ipaddress
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rdatatype
import dns.zone

from poisonproof.lab.world import LAYOUT, World, lab_world

TARGETS = ("poisonproof", "unbound", "bind9", "knot-resolver", "pdns-recursor", "dnsmasq")
"""The resolvers this module can configure, by the name `--target` takes."""

BINARIES: dict[str, str] = {
    "unbound": "unbound",
    "bind9": "named",
    "knot-resolver": "kresd",
    "pdns-recursor": "pdns_recursor",
    "dnsmasq": "dnsmasq",
}
"""The executable each third-party target runs (ours runs `python -m poisonproof`)."""

DEBIAN_PACKAGES: dict[str, str] = {
    "unbound": "unbound",
    "bind9": "bind9",
    "knot-resolver": "knot-resolver",
    "pdns-recursor": "pdns-recursor",
    "dnsmasq": "dnsmasq",
}

LAB_CLIENTS = ("127.0.0.0/8", "10.53.0.0/16")
"""Who may ask a target: loopback and the lab's networks; nobody else."""

DEFAULT_FIXED_PORT = 33333
"""The one source port of a weakened target (the SEED Labs Kaminsky lab's)."""

SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")

PR_SET_PDEATHSIG = 1


class TargetError(Exception):
    """A target cannot be configured, started or asked; the message says which and why."""


class Popen(Protocol):
    """Starts a process: `subprocess.Popen`'s call, perhaps inside a network namespace."""

    def __call__(self, args: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]: ...


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the thread that started it ends (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn(args: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """`subprocess.Popen` in this process's namespaces; the child dies with its parent."""
    if sys.platform.startswith("linux") and "preexec_fn" not in kwargs:
        kwargs["preexec_fn"] = _die_with_parent
    return subprocess.Popen(list(args), **kwargs)


def find_binary(program: str) -> str | None:
    """`program` on PATH or in the sbin directories (often missing from a user's PATH)."""
    found = shutil.which(program)
    if found:
        return found
    for directory in SBIN_DIRS:
        candidate = Path(directory) / program
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def target_binary(name: str) -> str | None:
    """The executable of target `name`, or None when it is not installed."""
    _check_name(name)
    if name == "poisonproof":
        return sys.executable
    return find_binary(BINARIES[name])


def _check_name(name: str) -> None:
    if name not in TARGETS:
        raise ValueError(f"unknown target {name!r}; known: {', '.join(TARGETS)}")


# -- what each can be made to do --------------------------------------------------------


_WEAKENED: dict[str, tuple[bool, str]] = {
    "poisonproof": (
        True,
        "`serve --defenses 2008`: port-pool 1 (one source port, picked at start-up and "
        "kept; `serve` has no setting to name it), 16-bit IDs from a seeded PRNG, no 0x20, "
        "no bailiwick scrubbing, no credibility ranks, no cookies, no DNSSEC",
    ),
    "unbound": (
        True,
        'outgoing-port-avoid: "0-65535" then outgoing-port-permit: PORT (one port: '
        "Unbound has one UDP query outstanding at a time); use-caps-for-id: no (its "
        "default anyway)",
    ),
    "bind9": (
        True,
        "query-source address * port PORT; (BIND 9.18 accepts it and warns that a fixed "
        "query source port is insecure; the port was deprecated in 9.18 and, as far as "
        "we know, dropped in 9.20 - only 9.18 was tried here). "
        "BIND has no 0x20",
    ),
    "knot-resolver": (
        False,
        "kresd cannot be held to one port: net.outgoing_v4() sets only the source "
        "address, every upstream UDP query gets a kernel-chosen ephemeral port "
        "(net.ipv4.ip_local_port_range narrows them for the whole namespace, not to "
        "one). Weakened = option('NO_0X20', true) only",
    ),
    "pdns-recursor": (
        True,
        "udp-source-port-min=PORT and udp-source-port-max=PORT (and "
        "udp-source-port-avoid emptied); spoof-nearmiss-max=0 turns off its alarm on "
        "near-miss replies. Mostly one port: while the previous query of a referral chain "
        "still holds it, the next falls back to a kernel-chosen port; a lone query (a "
        "Kaminsky trigger) always uses it. PowerDNS Recursor has no 0x20",
    ),
    "dnsmasq": (
        True,
        "query-port=PORT (dnsmasq's behaviour before 2.43). dnsmasq 2.90 has no 0x20",
    ),
}


def supports_weakened(name: str) -> tuple[bool, str]:
    """Whether target `name` can be held to one source port, and how (or why not)."""
    _check_name(name)
    return _WEAKENED[name]


# -- the spec -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetSpec:
    """What to run: which resolver, stock or weakened, where, and from which root hints."""

    name: str
    """One of `TARGETS`."""
    weakened: bool
    """One fixed source port and 0x20 off where the software allows (`supports_weakened`)."""
    listen: str
    """IPv4 address the target answers clients on."""
    root_hints: Path
    """Root hints in zone-file format (`World.root_hints_text()`)."""
    port: int = 53
    """Port the target answers clients on."""
    upstream_port: int = 53
    """Port of the lab's servers. Unbound, Knot Resolver and PowerDNS Recursor follow
    referrals to port 53 only; BIND (`port`), dnsmasq and ours can use another."""
    fixed_port: int | None = None
    """Weakened: the one source port (None: `DEFAULT_FIXED_PORT`; ours picks its own)."""
    trust_anchor: Path | None = None
    """DS/DNSKEY records of the root in zone-file format: validate. None: do not."""
    control_port: int = 953
    """BIND: the rndc control channel's TCP port on `listen`; ours: the port of its
    Prometheus metrics (`serve --metrics`), which `Target.stats` reads."""
    forward_zones: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """dnsmasq only (it forwards, it never iterates): (zone, server addresses) pairs.
    Empty: every zone of the lab world whose root servers the hints name."""
    forwarders: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """Conditional forwarding (every target): (zone, forwarder addresses) pairs. Questions
    in the zone go to its forwarders (RD set), the rest is resolved from the root as
    usual -- the set-up MaginotDNS attacks."""
    defenses: str | None = None
    """Ours only: the `--defenses` preset (None: `default`, or `2008` when weakened).
    The other targets have no presets; `weakened` is their only switch."""
    extra: tuple[str, ...] = ()
    """Lines appended verbatim to the generated configuration (its main section), e.g.
    `iter-scrub-promiscuous: no` for Unbound, `mode('permissive')` for Knot Resolver."""

    def __post_init__(self) -> None:
        _check_name(self.name)
        try:
            ipaddress.IPv4Address(self.listen)
        except ValueError:
            raise ValueError(f"listen: {self.listen!r} is not an IPv4 address") from None
        for what in ("port", "upstream_port", "control_port"):
            value = getattr(self, what)
            if not 0 < value < 65536:
                raise ValueError(f"{what}: {value} is not in 1..65535")
        if self.fixed_port is not None and not 0 < self.fixed_port < 65536:
            raise ValueError(f"fixed_port: {self.fixed_port} is not in 1..65535")

    @property
    def source_port(self) -> int | None:
        """The one source port a weakened target uses, when it is known in advance."""
        if not self.weakened or self.name in ("poisonproof", "knot-resolver"):
            return None
        return self.fixed_port or DEFAULT_FIXED_PORT

    def describe(self) -> str:
        return f"{self.name} ({'weakened' if self.weakened else 'stock'})"


# -- the lab world seen from its root hints ----------------------------------------------


def _hint_addresses(root_hints: Path) -> list[str]:
    addresses = []
    for line in root_hints.read_text(encoding="utf-8").splitlines():
        fields = line.split(";", 1)[0].split()
        if len(fields) >= 3 and fields[-2].upper() == "A":
            addresses.append(fields[-1])
    return addresses


def world_of_hints(root_hints: Path) -> World:
    """The lab world whose root servers `root_hints` names; ValueError if none is."""
    addresses = _hint_addresses(root_hints)
    if not addresses:
        raise ValueError(f"{root_hints} names no root server address")
    first_root = next(spec for spec in LAYOUT if "root.zone" in spec.zone_files)
    base = ipaddress.IPv4Address(addresses[0]) - first_root.host
    world = lab_world(str(base))
    if sorted(s.address for s in world.root_servers) != sorted(addresses):
        raise ValueError(f"{root_hints} does not name the root servers of a lab world")
    return world


def lab_forward_zones(world: World) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(zone, addresses of its servers) for every zone of `world`, the root first."""
    zones: dict[str, list[str]] = {}
    for server in world.servers:
        for file_name in server.zone_files:
            origin = "." if file_name == "root.zone" else file_name.removesuffix("zone")
            zones.setdefault(origin, []).append(server.address)
    return tuple((zone, tuple(addresses)) for zone, addresses in zones.items())


def _anchor_records(path: Path) -> list[tuple[str, str, str]]:
    """(owner, type, rdata) of every DS/DNSKEY record in a zone-file trust anchor."""
    zone = dns.zone.from_file(str(path), origin=dns.name.root, relativize=False, check_origin=False)
    records = []
    for name, node in zone.nodes.items():
        for rdataset in node.rdatasets:
            if rdataset.rdtype in (dns.rdatatype.DS, dns.rdatatype.DNSKEY):
                for rdata in rdataset:
                    records.append(
                        (name.to_text(), dns.rdatatype.to_text(rdataset.rdtype), rdata.to_text())
                    )
    if not records:
        raise ValueError(f"{path} holds no DS or DNSKEY record")
    return records


# -- the configurations -------------------------------------------------------------------


def _unbound_config(spec: TargetSpec, workdir: Path) -> str:
    if spec.upstream_port != 53:
        raise TargetError("unbound follows referrals to port 53 only: upstream_port must be 53")
    lines = [
        f"# Unbound for the poisonproof lab: {spec.describe()}.",
        "server:",
        "    verbosity: 1",
        f"    interface: {spec.listen}",
        f"    port: {spec.port}",
        "    do-ip4: yes",
        "    do-ip6: no",
        "    do-udp: yes",
        "    do-tcp: yes",
        "    do-daemonize: no",
        "    num-threads: 1",
        "    so-reuseport: no",
        '    username: ""',
        '    chroot: ""',
        f'    directory: "{workdir}"',
        f'    pidfile: "{workdir}/unbound.pid"',
        "    use-syslog: no",
        '    logfile: ""',
        "    log-time-ascii: yes",
        *(f"    access-control: {cidr} allow" for cidr in LAB_CLIENTS),
        f'    root-hints: "{spec.root_hints}"',
        "    # the lab's servers live on loopback",
        "    do-not-query-localhost: no",
        "    statistics-cumulative: yes",
        "    extended-statistics: yes",
    ]
    if spec.trust_anchor is None:
        lines += ['    module-config: "iterator"', "    # unsigned lab world: no validation"]
    else:
        lines += ['    module-config: "validator iterator"']
        lines += [f'    trust-anchor-file: "{spec.trust_anchor}"']
    if spec.weakened:
        lines += [
            "    # weakened: one fixed source port, 0x20 off",
            '    outgoing-port-avoid: "0-65535"',
            f"    outgoing-port-permit: {spec.source_port}",
            "    # one socket: further queries wait for it (more would fail to bind the port:",
            '    # "failed to find an open port, drop msg", and the client gets SERVFAIL)',
            "    outgoing-range: 1",
            "    use-caps-for-id: no",
        ]
    lines += [f"    {line}" for line in spec.extra]
    lines += [
        "",
        "remote-control:",
        "    control-enable: yes",
        f'    control-interface: "{workdir}/unbound-control.sock"',
        "    control-use-cert: no",
    ]
    for zone, addresses in spec.forwarders:
        lines += ["", "forward-zone:", f'    name: "{zone}"']
        lines += [f"    forward-addr: {address}@{spec.upstream_port}" for address in addresses]
    return "\n".join(lines) + "\n"


def _bind_trust_anchors(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    if "trust-anchors" in text:
        return f'include "{path}";'
    entries = []
    for owner, rdtype, rdata in _anchor_records(path):
        fields = rdata.split()
        if rdtype == "DS":
            keytag, algorithm, digest_type, digest = fields[0], fields[1], fields[2], fields[3:]
            entries.append(
                f'    "{owner}" static-ds {keytag} {algorithm} {digest_type} "{"".join(digest)}";'
            )
        else:
            flags, protocol, algorithm, key = fields[0], fields[1], fields[2], fields[3:]
            entries.append(
                f'    "{owner}" static-key {flags} {protocol} {algorithm} "{"".join(key)}";'
            )
    return "trust-anchors {\n" + "\n".join(entries) + "\n};"


def _bind_config(spec: TargetSpec, workdir: Path, rndc_secret: str) -> str:
    clients = " ".join(f"{cidr};" for cidr in LAB_CLIENTS)
    options = [
        f'    directory "{workdir}";',
        f'    pid-file "{workdir}/named.pid";',
        f'    dump-file "{workdir}/named_dump.db";',
        f'    statistics-file "{workdir}/named.stats";',
        f'    session-keyfile "{workdir}/session.key";',
        f'    managed-keys-directory "{workdir}";',
        f"    listen-on port {spec.port} {{ {spec.listen}; }};",
        "    listen-on-v6 { none; };",
        "    recursion yes;",
        f"    allow-query {{ {clients} }};",
        f"    allow-recursion {{ {clients} }};",
        f"    allow-query-cache {{ {clients} }};",
        "    max-cache-size 64m;",
    ]
    if spec.upstream_port != 53:
        options += [
            f"    // the lab's servers answer on port {spec.upstream_port}",
            f"    port {spec.upstream_port};",
        ]
    if spec.trust_anchor is None:
        options += ["    // unsigned lab world: no validation", "    dnssec-validation no;"]
    else:
        options += ["    dnssec-validation yes;"]
    if spec.weakened:
        options += [
            "    // weakened: one fixed source port (the SEED Labs Kaminsky lab's setting)",
            f"    query-source address * port {spec.source_port};",
        ]
    options += [f"    {line}" for line in spec.extra]
    parts = [
        f"// BIND 9 for the poisonproof lab: {spec.describe()}.",
        "options {",
        *options,
        "};",
        "",
        f'zone "." {{ type hint; file "{spec.root_hints}"; }};',
        *(
            f'zone "{zone}" {{ type forward; forward only; forwarders {{ '
            + " ".join(f"{address};" for address in addresses)
            + " }; };"
            for zone, addresses in spec.forwarders
        ),
        "",
        f'key "lab-rndc" {{ algorithm hmac-sha256; secret "{rndc_secret}"; }};',
        "controls {",
        f"    inet {spec.listen} port {spec.control_port} allow {{ {clients} }} "
        'keys { "lab-rndc"; };',
        "};",
        "",
        "logging {",
        "    channel lab_stderr { stderr; severity info; print-time yes; print-category yes; };",
        "    category default { lab_stderr; };",
        "    category lame-servers { null; };",
        "};",
    ]
    if spec.trust_anchor is not None:
        parts += ["", _bind_trust_anchors(spec.trust_anchor)]
    return "\n".join(parts) + "\n"


def _kresd_config(spec: TargetSpec, workdir: Path) -> str:
    if spec.upstream_port != 53:
        raise TargetError(
            "knot-resolver follows referrals to port 53 only: upstream_port must be 53"
        )
    lines = [
        f"-- Knot Resolver for the poisonproof lab: {spec.describe()}.",
        "log_target('stderr')",
        "log_level('notice')",
        "net.ipv6 = false",
        f"net.listen('{spec.listen}', {spec.port}, {{ kind = 'dns' }})",
        "-- clients: kresd has no ACL unless the view module is loaded; only the lab",
        "modules.load('view')",
        *(f"view:addr('{cidr}', policy.all(policy.PASS))" for cidr in LAB_CLIENTS),
        "view:addr('0.0.0.0/0', policy.all(policy.REFUSE))",
        "-- the hints module feeds hints.root_file into the iterator's root zone cut",
        "modules.load('hints > iterate')",
        f"hints.root_file('{spec.root_hints}')",
        "-- the lab's servers live on loopback, which kresd refuses to ask without this",
        "option('ALLOW_LOCAL', true)",
        f"cache.open(50 * MB, 'lmdb://{workdir}/cache')",
        "-- counters for Target.stats (read through the control socket in control/)",
        "modules.load('stats')",
    ]
    if spec.trust_anchor is None:
        lines += ["-- unsigned lab world: no validation", "trust_anchors.remove('.')"]
    else:
        lines += [
            "trust_anchors.remove('.')",
            f"trust_anchors.add_file('{spec.trust_anchor}', true)",
        ]
    if spec.weakened:
        lines += [
            "-- weakened: 0x20 off (kresd cannot be held to one source port)",
            "option('NO_0X20', true)",
        ]
    for zone, addresses in spec.forwarders:
        servers = ", ".join(f"'{address}@{spec.upstream_port}'" for address in addresses)
        lines += [
            f"policy.add(policy.suffix(policy.FORWARD({{{servers}}}), "
            f"{{todname('{zone.rstrip('.')}.')}}))"
        ]
    lines += list(spec.extra)
    return "\n".join(lines) + "\n"


def _pdns_config(spec: TargetSpec, workdir: Path) -> str:
    if spec.upstream_port != 53:
        raise TargetError(
            "pdns-recursor follows referrals to port 53 only: upstream_port must be 53"
        )
    lines = [
        f"# PowerDNS Recursor for the poisonproof lab: {spec.describe()}.",
        f"local-address={spec.listen}",
        f"local-port={spec.port}",
        f"allow-from={', '.join(LAB_CLIENTS)}",
        f"hint-file={spec.root_hints}",
        "# the lab's servers live on loopback (the default dont-query lists 127.0.0.0/8)",
        "dont-query=",
        "daemon=no",
        "write-pid=yes",
        f"socket-dir={workdir}",
        f"config-dir={workdir}",
        "disable-syslog=yes",
        "log-timestamp=yes",
        "loglevel=6",
        "threads=1",
        "pdns-distributes-queries=no",
        "query-local-address=0.0.0.0",
        "# no security-status query to secpoll.powerdns.com (it would only reach the lab root)",
        "security-poll-suffix=",
    ]
    if spec.trust_anchor is None:
        lines += ["# unsigned lab world: no validation", "dnssec=off"]
    else:
        lines += ["dnssec=validate", f"lua-config-file={workdir}/recursor.lua"]
    if spec.weakened:
        lines += [
            "# weakened: one fixed source port, no alarm on near-miss replies",
            f"udp-source-port-min={spec.source_port}",
            f"udp-source-port-max={spec.source_port}",
            "udp-source-port-avoid=",
            "spoof-nearmiss-max=0",
        ]
    if spec.forwarders:
        forwards = ", ".join(
            f"{zone.rstrip('.')}=" + ";".join(f"{a}:{spec.upstream_port}" for a in addresses)
            for zone, addresses in spec.forwarders
        )
        lines += [f"forward-zones-recurse={forwards}"]
    lines += list(spec.extra)
    return "\n".join(lines) + "\n"


def _pdns_lua(spec: TargetSpec) -> str:
    return f'clearTA()\nreadTrustAnchorsFromFile("{spec.trust_anchor}", 0)\n'


def _dnsmasq_config(spec: TargetSpec, workdir: Path) -> str:
    zones = spec.forward_zones
    if not zones:
        try:
            zones = lab_forward_zones(world_of_hints(spec.root_hints))
        except (OSError, ValueError) as error:
            raise TargetError(
                "dnsmasq forwards, it never follows referrals: give TargetSpec.forward_zones "
                f"(zone -> the servers to ask), or the root hints of a lab world ({error})"
            ) from None
    lines = [
        f"# dnsmasq for the poisonproof lab: {spec.describe()}.",
        "# dnsmasq forwards, it never iterates: each lab zone goes to its own servers",
        f"port={spec.port}",
        f"listen-address={spec.listen}",
        "bind-interfaces",
        "no-resolv",
        "no-hosts",
        "no-poll",
        "no-negcache",
        "cache-size=10000",
        f"pid-file={workdir}/dnsmasq.pid",
        "user=root",
        "group=",  # no group change (the default, dip, is unavailable in a user namespace)
        "log-facility=-",
        "# log-queries also makes SIGUSR1 write a full cache dump to the log",
        "log-queries",
    ]
    for zone, addresses in (*spec.forwarders, *zones):
        domain = "" if zone in (".", "") else f"/{zone.rstrip('.')}/"
        for address in addresses:
            lines.append(f"server={domain}{address}#{spec.upstream_port}")
    if spec.trust_anchor is not None:
        lines.append("dnssec")
        for owner, rdtype, rdata in _anchor_records(spec.trust_anchor):
            if rdtype == "DS":
                keytag, algorithm, digest_type, *digest = rdata.split()
                owner_text = "." if owner == "." else owner.rstrip(".")
                lines.append(
                    f"trust-anchor={owner_text},{keytag},{algorithm},{digest_type},"
                    f"{''.join(digest)}"
                )
    if spec.weakened:
        lines += ["# weakened: one fixed source port", f"query-port={spec.source_port}"]
    lines += list(spec.extra)
    return "\n".join(lines) + "\n"


def _poisonproof_config(spec: TargetSpec) -> str:
    lines = [
        f"# poisonproof serve for the lab: {spec.describe()}.",
        f'listen = ["{spec.listen}:{spec.port}"]',
        f'root_hints = "{spec.root_hints}"',
        "query_localhost = true",
        f"upstream_port = {spec.upstream_port}",
        "allow = [" + ", ".join(f'"{cidr}"' for cidr in LAB_CLIENTS) + "]",
    ]
    if spec.defenses is not None:
        lines += [f'defenses = "{spec.defenses}"']
    elif spec.weakened:
        lines += [
            "# weakened: the pre-2008 preset (one source port, picked at start-up)",
            'defenses = "2008"',
        ]
    else:
        lines += ['defenses = "default"']
    if spec.weakened:
        port = spec.fixed_port or DEFAULT_FIXED_PORT
        lines += [f"# weakened: every upstream query from port {port}", f"query_port = {port}"]
    if spec.trust_anchor is not None:
        lines += [f'trust_anchor_file = "{spec.trust_anchor}"']
    if spec.forwarders:
        forwards = (
            f'"{zone}=' + ",".join(f"{a}:{spec.upstream_port}" for a in addresses) + '"'
            for zone, addresses in spec.forwarders
        )
        lines += ["forward = [" + ", ".join(forwards) + "]"]
    lines += list(spec.extra)
    return "\n".join(lines) + "\n"


CONFIG_FILES = {
    "poisonproof": "poisonproof.toml",
    "unbound": "unbound.conf",
    "bind9": "named.conf",
    "knot-resolver": "kresd.conf",
    "pdns-recursor": "recursor.conf",
    "dnsmasq": "dnsmasq.conf",
}


# -- versions and what the stock configuration does ---------------------------------------


_VERSION_COMMANDS: dict[str, tuple[list[str], str]] = {
    "unbound": (["-V"], r"Version\s+(\S+)"),
    "bind9": (["-v"], r"BIND\s+(\S+)"),
    "knot-resolver": (["--version"], r"version\s+(\S+)"),
    "pdns-recursor": (["--version"], r"PowerDNS Recursor\s+(\S+)"),
    "dnsmasq": (["--version"], r"Dnsmasq version\s+(\S+)"),
}


def target_version(name: str) -> str | None:
    """The installed version of target `name` (None when not installed or unreadable)."""
    _check_name(name)
    if name == "poisonproof":
        from poisonproof import __version__

        return __version__
    binary = target_binary(name)
    if binary is None:
        return None
    args, pattern = _VERSION_COMMANDS[name]
    try:
        done = subprocess.run(
            [binary, *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(pattern, done.stdout + done.stderr)
    return match[1] if match else None


def unbound_knows_option(option: str) -> bool:
    """True when the installed Unbound accepts `option` (a patched build may add some)."""
    checkconf = find_binary("unbound-checkconf")
    if checkconf is None:
        return False

    with tempfile.TemporaryDirectory(prefix="poisonproof-unbound-") as tmp:
        conf = Path(tmp) / "probe.conf"
        conf.write_text(f'server:\n    {option}: yes\n    chroot: ""\n    username: ""\n')
        try:
            done = subprocess.run(
                [checkconf, str(conf)], capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
    return done.returncode == 0


def _major_minor(version: str | None) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", version or "")
    return (int(match[1]), int(match[2])) if match else (0, 0)


def _ephemeral_range() -> str:
    """This network namespace's net.ipv4.ip_local_port_range, as `low-high`."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    except (OSError, ValueError):
        return "32768-60999 by default"
    return f"{low}-{high}"


def defaults_notes(name: str) -> str:
    """What the installed version of `name`, as configured stock here, does against
    forged answers: source ports, IDs, 0x20, scrubbing, alarms, DNSSEC."""
    _check_name(name)
    version = target_version(name)
    shown = version or "not installed"
    ephemeral = _ephemeral_range()
    if name == "poisonproof":
        return (
            f"poisonproof {shown}, `--defenses default`: CSPRNG IDs, a random source port "
            "from 1024-65535 per query, 0x20 on, bailiwick scrubbing and RFC 2181 "
            "credibility, merged duplicate queries, TCP retry after a near miss, cookies, "
            "an unwanted-reply alarm; DNSSEC only from a trust anchor (none here)."
        )
    if name == "unbound":
        scrub = (
            "This build has iter-scrub-promiscuous (default yes: Debian's backport of the "
            "CVE-2025-11411 fix): it scrubs an unsolicited NS RRset, and its address records, "
            "from the authority section of positive answers (and, per the follow-up fix, "
            "NODATA and YXDOMAIN ones), so the Kaminsky forgery that answers the trigger name "
            "and adds NS records for the zone loses them even on a fixed port; a forged "
            "referral (no answer, NS and glue) is not concerned. `iter-scrub-promiscuous: no` "
            "(TargetSpec.extra) turns it off."
            if unbound_knows_option("iter-scrub-promiscuous")
            else "This build has no iter-scrub-promiscuous (CVE-2025-11411 not fixed): an "
            "NS RRset in a forged answer's authority section can replace the delegation."
        )
        return (
            f"Unbound {shown}: random 16-bit IDs, a random source port per query out of "
            "outgoing-range (4096) sockets over 1024-65535, use-caps-for-id "
            "no (0x20 off by default), harden-glue yes (out-of-zone records scrubbed), "
            "unwanted-reply-threshold 0 (no alarm), qname-minimisation yes; DNSSEC only "
            f"with a trust anchor (none here). {scrub}"
        )
    if name == "bind9":
        removed = _major_minor(version) >= (9, 20)
        port_note = (
            "query-source is not expected to take a port in this version (deprecated in "
            "9.18); only 9.18 was tried: named-checkconf will say (Target.check_config)"
            if removed
            else "query-source ... port N still works here, with warnings that it is "
            "deprecated and suppresses port randomization"
        )
        return (
            f"BIND {shown}: random 16-bit IDs, a random source port per query from "
            f"use-v4-udp-ports (by default the kernel's ephemeral range, {ephemeral} here), "
            "no 0x20, DNS COOKIE sent to servers "
            "(send-cookie yes; a server that once returned a cookie must keep echoing it), "
            "answers scrubbed to the queried zone, dnssec-validation no here (auto by "
            f"default). {port_note}."
        )
    if name == "knot-resolver":
        return (
            f"Knot Resolver {shown}: random 16-bit IDs, a kernel-chosen ephemeral source "
            f"port per query (net.ipv4.ip_local_port_range: {ephemeral} here), 0x20 "
            "on (NO_0X20 turns it off), strict bailiwick (mode('normal'); "
            "mode('permissive') relaxes it), DNSSEC validation by default (the root anchor "
            "is removed here for the unsigned world). No cache dump: cache.get() is not "
            "implemented in 5.x and the LMDB cache is binary."
        )
    if name == "pdns-recursor":
        return (
            f"PowerDNS Recursor {shown}: random 16-bit IDs, a fresh random source port per "
            "query from udp-source-port-min..max (1024-65535), no 0x20, "
            "spoof-nearmiss-max 1 (a query that draws more than one reply with a wrong ID "
            "is taken as spoofed: counted in spoof-prevents, its answer not used), answers "
            "scrubbed to the queried zone, dnssec=off here (process by default). Weakened, "
            "the fixed port is busy while the previous query of a referral chain still "
            "holds it, and the next query falls back to a kernel port (about 1 in 3 in the "
            "lab); a lone query (a Kaminsky trigger) always leaves from the fixed port."
        )
    return (
        f"dnsmasq {shown}: a forwarder (no iteration): random 16-bit IDs, one random source "
        "port per forwarded query (port-limit 1; in the lab all fell in the kernel's "
        f"ephemeral range, {ephemeral}, although the manual says min-port defaults to "
        "1024), no 0x20, a reply must come from the server asked and echo the question "
        "(CVE-2020-25684/5/6 fixes in 2.83); an unmatched reply is dropped before any "
        "counter or packet dump sees it."
    )


# -- counters -----------------------------------------------------------------------------

UDP_FIELDS = ("InDatagrams", "NoPorts", "InErrors", "OutDatagrams", "RcvbufErrors")


def parse_udp_counters(snmp: str) -> dict[str, int]:
    """The `Udp:` line pair of /proc/net/snmp as a dict (every field, by name)."""
    rows = [line.split()[1:] for line in snmp.splitlines() if line.startswith("Udp:")]
    if len(rows) < 2:
        raise ValueError("no Udp: lines in /proc/net/snmp")
    names, values = rows[0], rows[1]
    return {n: int(v) for n, v in zip(names, values, strict=True)}


def udp_counters(popen: Popen | None = None, timeout: float = 10) -> dict[str, int]:
    """The kernel's UDP counters of a network namespace (`/proc/net/snmp`, `Udp:`).

    `popen` runs `cat /proc/net/snmp` in the namespace to read (the one its processes
    live in); None reads this process's own. `InDatagrams` counts datagrams delivered to
    sockets, `RcvbufErrors` those dropped because a socket's receive buffer was full (a
    flood's losses; they are also in `InErrors`). They count the whole namespace: take the
    difference across an experiment in a namespace where the target is the only busy
    receiver.
    """
    if popen is None:
        return parse_udp_counters(Path("/proc/self/net/snmp").read_text())
    proc = popen(["cat", "/proc/net/snmp"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return parse_udp_counters(out.decode())


# -- one running target --------------------------------------------------------------------


EXCHANGE_TIMEOUT = 3
"""Exit status of `python -m poisonproof.lab.targets exchange` when no reply came."""


class Target:
    """One resolver started from a `TargetSpec`, with its files in `workdir`.

    `popen` starts its processes (the resolver and its control tools; called like
    `subprocess.Popen` with keyword arguments); the default runs them in this process's
    namespaces and kills them if this process dies. `ask` sends from this process, so
    `spec.listen` must be reachable from here.
    """

    def __init__(
        self,
        spec: TargetSpec,
        workdir: Path,
        popen: Popen = spawn,
        *,
        ask_from_here: bool | None = None,
    ) -> None:
        self.spec = spec
        self.workdir = Path(workdir).absolute()
        self._popen = popen
        self.ask_from_here = popen is spawn if ask_from_here is None else ask_from_here
        """True: questions leave from this process. False: from a short-lived process
        started with `popen` (in the target's namespace, which this process may not
        reach, e.g. `LabNet`'s): slower, about 0.2 s a question. Default: True only
        with the default `popen`."""
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._rndc_secret = base64.b64encode(secrets.token_bytes(32)).decode()

    # files
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def config_path(self) -> Path:
        return self.workdir / CONFIG_FILES[self.name]

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def config_text(self) -> str:
        """The generated configuration (for ours, a `serve --config` TOML file)."""
        spec, workdir = self.spec, self.workdir
        if self.name == "unbound":
            return _unbound_config(spec, workdir)
        if self.name == "bind9":
            return _bind_config(spec, workdir, self._rndc_secret)
        if self.name == "knot-resolver":
            return _kresd_config(spec, workdir)
        if self.name == "pdns-recursor":
            return _pdns_config(spec, workdir)
        if self.name == "dnsmasq":
            return _dnsmasq_config(spec, workdir)
        return _poisonproof_config(spec)

    @cached_property
    def defaults_notes(self) -> str:
        """What this software's stock configuration does against spoofing (its version)."""
        return defaults_notes(self.name)

    def _binary(self) -> str:
        binary = target_binary(self.name)
        if binary is None:
            package = DEBIAN_PACKAGES.get(self.name, self.name)
            raise TargetError(
                f"{self.name}: {BINARIES[self.name]} is not installed (Debian: apt-get "
                f"install {package})"
            )
        return binary

    def _tool(self, program: str) -> str:
        found = find_binary(program)
        if found is None:
            raise TargetError(f"{self.name}: {program} is not installed")
        return found

    def _command(self) -> list[str]:
        binary = self._binary()
        conf = str(self.config_path)
        if self.name == "unbound":
            return [binary, "-d", "-c", conf]
        if self.name == "bind9":
            return [binary, "-g", "-4", "-n", "1", "-c", conf]
        if self.name == "knot-resolver":
            return [binary, "-n", "-q", "-c", conf, str(self.workdir)]
        if self.name == "pdns-recursor":
            return [binary, f"--config-dir={self.workdir}"]
        if self.name == "dnsmasq":
            return [binary, "-k", f"--conf-file={conf}"]
        metrics = f"{self.spec.listen}:{self.spec.control_port}"
        return [binary, "-m", "poisonproof", "serve", "--config", conf, "--metrics", metrics]

    def _write_files(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text(), encoding="utf-8")
        if self.name == "bind9":
            (self.workdir / "rndc.conf").write_text(
                f'key "lab-rndc" {{ algorithm hmac-sha256; secret "{self._rndc_secret}"; }};\n'
                f'options {{ default-key "lab-rndc"; default-server {self.spec.listen}; '
                f"default-port {self.spec.control_port}; }};\n",
                encoding="utf-8",
            )
        if self.name == "pdns-recursor" and self.spec.trust_anchor is not None:
            (self.workdir / "recursor.lua").write_text(_pdns_lua(self.spec), encoding="utf-8")

    def check_config(self) -> None:
        """Write the configuration and have the software's own checker (unbound-checkconf,
        named-checkconf) read it, where it has one; TargetError with its complaint."""
        self._write_files()
        checker = {"unbound": "unbound-checkconf", "bind9": "named-checkconf"}.get(self.name)
        tool = find_binary(checker) if checker else None
        if tool is None:
            return
        done = subprocess.run(
            [tool, str(self.config_path)], capture_output=True, text=True, timeout=20
        )
        if done.returncode != 0:
            raise TargetError(
                f"{self.spec.describe()}: {checker} rejects {self.config_path}:\n"
                f"{done.stdout}{done.stderr}"
            )

    # lifecycle
    def start(self, timeout: float = 15) -> None:
        """Write the configuration, start the resolver, wait until it answers a query."""
        if self.proc is not None and self.proc.poll() is None:
            return
        self.check_config()
        command = self._command()
        self._log_file = self.log_path.open("ab")
        env = None
        if self.name == "knot-resolver":  # kresd reads a systemd instance name from here
            env = {k: v for k, v in os.environ.items() if k != "SYSTEMD_INSTANCE"}
        try:
            self.proc = self._popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                cwd=str(self.workdir),
                env=env,
            )
        except OSError as error:
            self._close_log()
            raise TargetError(
                f"{self.spec.describe()}: cannot start {command[0]}: {error}"
            ) from None
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self._close_log()
                raise TargetError(
                    f"{self.spec.describe()} exited with {code} before answering on "
                    f"{self.spec.listen}#{self.spec.port}; the end of its log "
                    f"({self.log_path}):\n{self.log_tail()}"
                )
            if self._answers():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise TargetError(
                    f"{self.spec.describe()} did not answer on {self.spec.listen}#"
                    f"{self.spec.port} within {timeout:g}s; the end of its log "
                    f"({self.log_path}):\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def _answers(self) -> bool:
        """Any reply to `version.bind. CH TXT` (RD=0: no upstream traffic)."""
        query = dns.message.make_query("version.bind.", "TXT", "CH")
        query.flags &= ~dns.flags.RD
        try:
            self.exchange(query, 0.25)
        except (dns.exception.DNSException, OSError, TargetError):
            return False
        return True

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def stop(self) -> None:
        """SIGTERM, wait, SIGKILL; does nothing when it is not running."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._close_log()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> Target:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # asking
    def ask(self, name: str, rdtype: str = "A", timeout: float = 8.0) -> dns.message.Message:
        """Ask the target (RD=1, EDNS 1232) over UDP, again over TCP when truncated."""
        query = dns.message.make_query(name, rdtype, use_edns=0, payload=1232)
        try:
            reply = self.exchange(query, timeout)
            if reply.flags & dns.flags.TC:
                reply = self.exchange(query, timeout, tcp=True)
        except dns.exception.Timeout:
            raise TargetError(
                f"{self.spec.describe()} did not answer {name} {rdtype} within {timeout:g}s; "
                f"the end of its log:\n{self.log_tail()}"
            ) from None
        return reply

    def exchange(
        self, query: dns.message.Message, timeout: float, *, tcp: bool = False
    ) -> dns.message.Message:
        """Send `query` to the target and return its reply (dns.exception.Timeout if none)."""
        where, port = self.spec.listen, self.spec.port
        if self.ask_from_here:
            if tcp:
                return dns.query.tcp(query, where, timeout=timeout, port=port)
            return dns.query.udp(query, where, timeout=timeout, port=port)
        args = [sys.executable, "-m", __name__, "exchange", where, str(port), str(timeout)]
        proc = self._popen(
            [*args, "tcp" if tcp else "udp"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            out, err = proc.communicate(query.to_wire(), timeout=timeout + 20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise dns.exception.Timeout from None
        if proc.returncode == EXCHANGE_TIMEOUT:
            raise dns.exception.Timeout
        if proc.returncode != 0:
            raise TargetError(f"{self.name}: asking through popen failed: {err.decode()[-500:]}")
        return dns.message.from_wire(out)

    # control tools
    def _run(self, args: Sequence[str], timeout: float = 20) -> tuple[int, str]:
        proc = self._popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=str(self.workdir),
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            raise TargetError(f"{self.name}: {args[0]} did not finish in {timeout:g}s") from None
        return proc.returncode, out.decode(errors="replace")

    def _run_ok(self, args: Sequence[str], timeout: float = 20) -> str:
        code, out = self._run(args, timeout)
        if code != 0:
            raise TargetError(f"{self.name}: {' '.join(args)} exited with {code}:\n{out}")
        return out

    def _require_running(self) -> None:
        if not self.running:
            raise TargetError(f"{self.spec.describe()} is not running")

    def cache_dump(self) -> str | None:
        """The target's cache as text, or None where it cannot be had (see `why_no_dump`).

        Unbound `unbound-control dump_cache`; BIND `rndc dumpdb -cache` (the dump file);
        PowerDNS `rec_control dump-cache`; dnsmasq SIGUSR1 (the cache dump it logs with
        log-queries). Ours and Knot Resolver have none.
        """
        self._require_running()
        if self.name == "unbound":
            return self._run_ok(
                [self._tool("unbound-control"), "-c", str(self.config_path), "dump_cache"]
            )
        if self.name == "bind9":
            return self._bind_dump()
        if self.name == "pdns-recursor":
            path = self.workdir / "pdns-cache.dump"
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            self._run_ok(
                [
                    self._tool("rec_control"),
                    f"--socket-dir={self.workdir}",
                    "dump-cache",
                    str(path),
                ]
            )
            return path.read_text(errors="replace")
        if self.name == "dnsmasq":
            return self._dnsmasq_dump()
        return None

    @property
    def why_no_dump(self) -> str | None:
        """Why `cache_dump` returns None for this target (None when it has a dump)."""
        if self.name == "knot-resolver":
            return (
                "Knot Resolver 5.x has no cache dump: cache.get() is not implemented and "
                "its LMDB cache is binary; ask it with RD=0 (or its control socket's "
                "cache.count()) instead"
            )
        if self.name == "poisonproof":
            return "`poisonproof serve` has no control channel to dump its cache through"
        return None

    def _bind_dump(self) -> str:
        dump = self.workdir / "named_dump.db"
        with contextlib.suppress(FileNotFoundError):
            dump.unlink()
        self._run_ok(self._rndc("dumpdb", "-cache"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # rndc returns before the dump is written
            with contextlib.suppress(OSError):
                text = dump.read_text(errors="replace")
                if "; Dump complete" in text:
                    return text
            time.sleep(0.05)
        raise TargetError(f"bind9: {dump} was not completed within 10 s")

    def _rndc(self, *args: str) -> list[str]:
        return [self._tool("rndc"), "-c", str(self.workdir / "rndc.conf"), *args]

    def _dnsmasq_dump(self) -> str:
        assert self.proc is not None
        before = self.log_path.stat().st_size
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 5
        text = ""
        while time.monotonic() < deadline:
            with self.log_path.open("rb") as log:
                log.seek(before)
                text = log.read().decode(errors="replace")
            # the dump lists every cached name, then per-server counters
            if re.search(r"server \S+#\d+: queries sent", text):
                break
            time.sleep(0.05)
        return text

    def stats(self) -> dict[str, int]:
        """The target's own counters (name -> value).

        Unbound `unbound-control stats_noreset`; BIND `rndc stats` (summed over views);
        PowerDNS `rec_control get-all`; Knot Resolver `worker.stats()` and `stats.list()`
        through its control socket (prefixed `worker.` and `stats.`); dnsmasq its CHAOS
        TXT counters (`hits.bind`, ..., and `servers.bind` as `queries sent IP#PORT` /
        `queries failed IP#PORT`); ours its Prometheus metrics (`spoof_alarms`,
        `unwanted_replies`, ..., and each `poisonproof_events_total{event}` by event name).
        """
        self._require_running()
        if self.name == "unbound":
            out = self._run_ok(
                [self._tool("unbound-control"), "-c", str(self.config_path), "stats_noreset"]
            )
            return _key_values(out, "=")
        if self.name == "pdns-recursor":
            out = self._run_ok(
                [self._tool("rec_control"), f"--socket-dir={self.workdir}", "get-all"]
            )
            return _key_values(out, None)
        if self.name == "bind9":
            return self._bind_stats()
        if self.name == "knot-resolver":
            return self._kresd_stats()
        if self.name == "dnsmasq":
            return self._dnsmasq_stats()
        return self._metrics_stats()

    def _metrics_stats(self) -> dict[str, int]:
        url = f"http://{self.spec.listen}:{self.spec.control_port}/metrics"
        script = (
            "import sys, urllib.request; "
            "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
        )
        return parse_metrics(self._run_ok([sys.executable, "-c", script, url]))

    def _bind_stats(self) -> dict[str, int]:
        stats = self.workdir / "named.stats"
        with contextlib.suppress(FileNotFoundError):
            stats.unlink()
        self._run_ok(self._rndc("stats"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                text = stats.read_text(errors="replace")
                if "--- Statistics Dump ---" in text:
                    return _bind_counters(text)
            time.sleep(0.05)
        raise TargetError(f"bind9: {stats} was not completed within 10 s")

    def kresd_command(self, command: str, timeout: float = 5) -> str:
        """Run a Lua `command` in kresd through its control socket; its printed result."""
        sockets = sorted((self.workdir / "control").glob("*"))
        if not sockets:
            raise TargetError(f"knot-resolver: no control socket in {self.workdir / 'control'}")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as control:
            control.settimeout(timeout)
            control.connect(str(sockets[-1]))
            control.sendall(b"__binary\n")  # from now on: 4-byte length, then the text
            control.sendall(command.encode() + b"\n")
            header = _recv_exactly(control, 4)
            return _recv_exactly(control, int.from_bytes(header, "big")).decode(errors="replace")

    def _kresd_stats(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for prefix, command in (("worker.", "worker.stats()"), ("stats.", "stats.list()")):
            for key, value in re.findall(
                r"\['([^']+)'\]\s*=\s*(-?\d+)\b", self.kresd_command(command)
            ):
                out[prefix + key] = int(value)
        return out

    def _dnsmasq_stats(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for counter in ("cachesize", "insertions", "evictions", "misses", "hits", "auth"):
            for text in self._chaos_txt(f"{counter}.bind."):
                with contextlib.suppress(ValueError):
                    out[counter] = int(text)
        for text in self._chaos_txt("servers.bind."):
            fields = text.split()  # "IP#PORT sent failed"
            if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
                out[f"queries sent {fields[0]}"] = int(fields[1])
                out[f"queries failed {fields[0]}"] = int(fields[2])
        return out

    def _chaos_txt(self, name: str) -> list[str]:
        query = dns.message.make_query(name, "TXT", "CH")
        reply = self.exchange(query, 3)
        return [
            text.decode(errors="replace")
            for rrset in reply.answer
            for rdata in rrset
            for text in rdata.strings
        ]

    def received_udp(self) -> int | None:
        """UDP datagrams the target's own counters say it read, or None where they do not.

        BIND: `UDP queries received` + `IPv4 responses received` + `mismatch responses
        received` (replies that matched no query: wrong ID, port or source). PowerDNS:
        UDP `questions` + the answers to its UDP queries (sent - timeouts - unreachable)
        + `unexpected-packets`. Unbound, Knot Resolver, dnsmasq and ours do not count
        every reply they read (dnsmasq drops an unmatched reply before any counter or
        its packet dump sees it): None - read `udp_counters` in their namespace.
        """
        if self.name == "bind9":
            stats = self.stats()
            keys = (
                "UDP queries received",
                "IPv4 responses received",
                "mismatch responses received",
            )
            return sum(stats.get(key, 0) for key in keys)
        if self.name == "pdns-recursor":
            stats = self.stats()
            answers = (
                stats.get("all-outqueries", 0)
                - stats.get("tcp-outqueries", 0)
                - stats.get("outgoing-timeouts", 0)
                - stats.get("unreachables", 0)
            )
            return (
                stats.get("questions", 0)
                - stats.get("tcp-questions", 0)
                + max(answers, 0)
                + stats.get("unexpected-packets", 0)
            )
        return None

    def unwanted_replies(self) -> int | None:
        """Replies the target read that matched no outstanding query (a flood's misses
        that got past the kernel), by its own counter; None where it keeps none.

        Unbound `unwanted.replies`, BIND `mismatch responses received`, PowerDNS
        `unexpected-packets`.
        """
        key = {
            "unbound": "unwanted.replies",
            "bind9": "mismatch responses received",
            "pdns-recursor": "unexpected-packets",
        }.get(self.name)
        if key is None:
            return None
        return self.stats().get(key, 0)


def parse_metrics(text: str, prefix: str = "poisonproof_") -> dict[str, int]:
    """Prometheus text -> counters: `poisonproof_spoof_alarms_total 3` as `spoof_alarms`,
    a sample labelled `event="x"` as `x`, other labelled samples as `name.value`."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name.removeprefix(prefix).removesuffix("_total")
            if "event" in sample.labels:
                name = sample.labels["event"]
            elif sample.labels:
                name = name + "." + ".".join(sample.labels.values())
            out[name] = int(sample.value)
    return out


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise TargetError("knot-resolver: the control socket closed mid-answer")
        data += chunk
    return data


def _key_values(text: str, separator: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split(separator, 1) if separator else line.split(None, 1)
        if len(parts) != 2:
            continue
        key, value = parts[0].strip(), parts[1].strip()
        with contextlib.suppress(ValueError):
            out[key] = int(float(value)) if "." in value else int(value)
    return out


def _bind_counters(text: str) -> dict[str, int]:
    """`rndc stats` output: `   123 description` lines, summed over views."""
    counters: dict[str, int] = {}
    for line in text.splitlines():
        match = re.match(r"^\s+(\d+) (.+?)\s*$", line)
        if match:
            counters[match[2]] = counters.get(match[2], 0) + int(match[1])
    return counters


def _exchange_main(argv: Sequence[str]) -> int:
    """`exchange HOST PORT TIMEOUT udp|tcp`: a query's wire form on stdin, the reply's on
    stdout; exit `EXCHANGE_TIMEOUT` when none came (what `Target.exchange` runs)."""
    host, port, timeout, transport = argv
    query = dns.message.from_wire(sys.stdin.buffer.read())
    send = dns.query.tcp if transport == "tcp" else dns.query.udp
    try:
        reply = send(query, host, timeout=float(timeout), port=int(port))
    except (dns.exception.Timeout, ConnectionError):
        return EXCHANGE_TIMEOUT
    sys.stdout.buffer.write(reply.to_wire())
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["exchange"] or len(sys.argv) != 6:
        sys.exit(
            f"usage: python -m {__spec__.name if __spec__ else 'targets'} exchange "
            "HOST PORT TIMEOUT udp|tcp"
        )
    sys.exit(_exchange_main(sys.argv[2:]))

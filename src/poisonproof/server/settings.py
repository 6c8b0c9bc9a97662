"""Resolver settings: the same keys from a TOML file and from command-line flags.

Owns: the operator-facing options of `poisonproof serve` / `resolve`, their validation
with messages that name the key and the problem, and building the resolver parts from
them. Flags override the file; the file overrides the defaults.
Must never: start servers or touch the network.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import random
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.exception
import dns.name

from poisonproof.net.address import parse_address
from poisonproof.net.base import Address, Clock
from poisonproof.resolver.anchors import AnchorError, TrustAnchors
from poisonproof.resolver.cache import Cache
from poisonproof.resolver.defenses import Defenses, preset
from poisonproof.resolver.frontend import DEFAULT_ALLOW, Frontend
from poisonproof.resolver.hints import RootHints, iana_root_hints, load_root_hints
from poisonproof.resolver.iterator import Resolver, ResolverConfig
from poisonproof.resolver.outgoing import Entropy


class SettingsError(Exception):
    """A setting that cannot be used; the message names it."""


@dataclass
class Settings:
    listen: list[str] = field(default_factory=lambda: ["127.0.0.1:5353"])
    outgoing_address: list[str] = field(default_factory=list)
    root_hints: str | None = None
    forward: list[str] = field(default_factory=list)
    trust_anchor_file: str | None = None
    insecure: list[str] = field(default_factory=list)
    qname_minimisation: bool | None = None
    ipv4: bool = True
    ipv6: bool = True
    harden_glue: bool | None = None
    query_localhost: bool = False
    min_ttl: int = 0
    max_ttl: int = 86_400
    defenses: str = "default"
    port_pool: int | None = None
    query_port: int | None = None
    """Send every upstream UDP query from this one port (BIND's `query-source port`):
    the 2008 weakness, for labs."""
    allow: list[str] = field(default_factory=lambda: list(DEFAULT_ALLOW))
    upstream_port: int = 53
    cache_size: int = 200_000
    zone_fetch_rate: int = 1_000
    """Upstream queries per second to one zone's servers (Unbound's `ratelimit`): a
    random-subdomain flood cannot hammer the victim zone; 0 turns the limit off."""

    @classmethod
    def load(cls, config: Path | None, overrides: dict[str, Any]) -> Settings:
        values: dict[str, Any] = {}
        if config is not None:
            try:
                values = tomllib.loads(config.read_text(encoding="utf-8"))
            except OSError as error:
                raise SettingsError(f"{config}: cannot read: {error.strerror or error}") from None
            except tomllib.TOMLDecodeError as error:
                raise SettingsError(f"{config}: {error}") from None
            values = {k.replace("-", "_"): v for k, v in values.items()}
        values.update({k: v for k, v in overrides.items() if v is not None and v != []})
        known = {f.name: f for f in dataclasses.fields(cls)}
        for key, value in values.items():
            if key not in known:
                raise SettingsError(f"unknown setting {key.replace('_', '-')!r}")
            kind = str(known[key].type)
            shown = key.replace("_", "-")
            if kind.startswith("list") and isinstance(value, str):
                values[key] = [value]
            elif kind.startswith("bool") and isinstance(value, str):
                values[key] = _switch(key, value)
            elif kind.startswith("bool") and not isinstance(value, bool):
                raise SettingsError(f"{shown}: expected on or off, got {value!r}")
            elif kind.startswith("int") and (not isinstance(value, int) or isinstance(value, bool)):
                raise SettingsError(f"{shown}: expected a number, got {value!r}")
            elif kind.startswith("str") and not isinstance(value, str):
                raise SettingsError(f"{shown}: expected text, got {value!r}")
        return cls(**values)

    # -- building -----------------------------------------------------------------------

    def listen_addresses(self) -> list[Address]:
        try:
            return [parse_address(spec, 53) for spec in self.listen]
        except ValueError as error:
            raise SettingsError(f"listen: {error}") from None

    def anchors(self) -> TrustAnchors:
        """The trust anchor file's; the IANA root's for the real root; none for other roots."""
        try:
            if self.trust_anchor_file is not None:
                anchors = TrustAnchors()
                anchors.add_file(Path(self.trust_anchor_file))
                if not anchors:
                    raise SettingsError(
                        f"trust-anchor-file: {self.trust_anchor_file} holds no DS or DNSKEY record"
                    )
            elif self.root_hints is None:
                anchors = TrustAnchors.iana_root()
            else:
                anchors = TrustAnchors()  # a private root: nothing to validate from
            for name in self.insecure:
                anchors.add_insecure(dns.name.from_text(name))
        except (AnchorError, dns.exception.DNSException) as error:
            raise SettingsError(f"trust anchors: {error}") from None
        return anchors

    def hints(self) -> RootHints:
        if self.root_hints is None:
            return iana_root_hints()
        try:
            return load_root_hints(self.root_hints)
        except Exception as error:
            raise SettingsError(f"root-hints: {error}") from None

    def build_defenses(self) -> Defenses:
        try:
            defenses = preset(self.defenses)
        except ValueError as error:
            raise SettingsError(f"defenses: {error}") from None
        changes: dict[str, Any] = {}
        if self.qname_minimisation is not None:
            changes["qname_minimisation"] = self.qname_minimisation
        if self.harden_glue is not None:
            changes["bailiwick"] = self.harden_glue
        if self.port_pool is not None:
            if not 0 <= self.port_pool <= 64_512:
                raise SettingsError("port-pool: expected 0 (all ports) to 64512")
            changes["port_pool"] = self.port_pool
        if self.query_port is not None:
            if not 1024 <= self.query_port <= 65_535:
                raise SettingsError("query-port: expected a port from 1024 to 65535")
            changes["port_pool"] = 1
            changes["fixed_port"] = self.query_port
        return dataclasses.replace(defenses, **changes)

    def forwarders(self) -> tuple[tuple[dns.name.Name, tuple[Address, ...]], ...]:
        out = []
        for spec in self.forward:
            zone_text, _, servers = spec.rpartition("=")
            zone = dns.name.from_text(zone_text or ".")
            try:
                addresses = tuple(parse_address(s, 53) for s in servers.split(",") if s)
            except ValueError as error:
                raise SettingsError(f"forward {spec!r}: {error}") from None
            if not addresses:
                raise SettingsError(f"forward {spec!r}: no server address")
            out.append((zone, addresses))
        return tuple(out)

    def resolver_config(self) -> ResolverConfig:
        v4, v6 = "0.0.0.0", "::"
        for address in self.outgoing_address:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                raise SettingsError(f"outgoing-address: {address!r} is not an IP address") from None
            if ip.version == 4:
                v4 = address
            else:
                v6 = address
        if not self.ipv4 and not self.ipv6:
            raise SettingsError("ipv4 and ipv6 are both off: no upstream server is reachable")
        if self.zone_fetch_rate < 0:
            raise SettingsError("zone-fetch-rate: expected 0 (off) or queries per second > 0")
        return ResolverConfig(
            port=self.upstream_port,
            outgoing_v4=v4,
            outgoing_v6=v6,
            ipv4=self.ipv4,
            ipv6=self.ipv6,
            query_localhost=self.query_localhost,
            forwarders=self.forwarders(),
            zone_fetch_rate=float(self.zone_fetch_rate),
        )

    def build(
        self, clock: Clock, entropy: Entropy | None = None, cache: Cache | None = None
    ) -> Frontend:
        """The frontend and resolver; with `cache`, that cache (a reload) under these limits."""
        anchors = self.anchors()
        for cidr in self.allow:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise SettingsError(f"allow: {cidr!r} is not an address or CIDR block") from None
        if self.min_ttl > self.max_ttl:
            raise SettingsError(f"min-ttl {self.min_ttl} is above max-ttl {self.max_ttl}")
        defenses = self.build_defenses()
        if cache is None:
            cache = Cache(clock)
        cache.max_entries = self.cache_size
        cache.min_ttl, cache.max_ttl = self.min_ttl, self.max_ttl
        cache.ranked = defenses.credibility
        resolver = Resolver(
            clock=clock,
            hints=self.hints(),
            defenses=defenses,
            entropy=entropy or Entropy(random.SystemRandom()),
            config=self.resolver_config(),
            cache=cache,
            anchors=anchors,
        )
        return Frontend(resolver, tuple(self.allow))


def _switch(key: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("on", "yes", "true", "1"):
        return True
    if lowered in ("off", "no", "false", "0"):
        return False
    raise SettingsError(f"{key.replace('_', '-')}: expected on or off, got {value!r}")

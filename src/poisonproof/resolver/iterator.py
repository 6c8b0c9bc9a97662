"""Iterative resolution from the root, as a generator that yields the exchanges it needs.

Owns: the resolution algorithm (cache first; closest known zone cut; priming; referrals;
glueless name servers with loop detection; CNAME/DNAME chasing up to 11 restarts; QNAME
minimisation (RFC 9156), given up for the full name when minimised queries go
unanswered; a bogus denial at the end of a secure CNAME/DNAME chain dropped for a lookup
of the target alone; TCP on TC; EDNS fallback; near-miss retry over TCP; server
choice and lameness), the work limits against abuse (upstream queries per client query,
name-server names resolved per referral (NXNSAttack), servers per delegation
(NRDelegation), a time budget, upstream queries per second per zone (`fetchlimit`))
and the SERVFAIL reasons (RFC 8914 Extended DNS Errors).

The seam (shared/DESIGN.md): `Resolver.resolve()` returns a generator. It yields an
`Exchange` (send this query to that server, this way) and is sent back an
`ExchangeResult`; a driver on the real or the simulated network does the sending.
Must never: do I/O, sleep, or read the system clock; time comes from the injected clock.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from poisonproof.net.base import Address, Clock
from poisonproof.resolver.aggressive import DenialCache
from poisonproof.resolver.anchors import TrustAnchors
from poisonproof.resolver.answers import (
    Answer,
    CacheAnswers,
    denial_records,
    from_wildcard,
    joined,
)
from poisonproof.resolver.cache import Cache, Rank
from poisonproof.resolver.chain import BOGUS_RETRIES, TrustChain
from poisonproof.resolver.defenses import Defenses
from poisonproof.resolver.denial import HashBudget
from poisonproof.resolver.fetchlimit import ZoneFetchLimiter
from poisonproof.resolver.hints import RootHints
from poisonproof.resolver.infra import Infrastructure
from poisonproof.resolver.outgoing import Entropy, OutgoingQuery, QueryFactory
from poisonproof.resolver.scrubber import ReplyKind, Scrubbed, scrub
from poisonproof.resolver.validator import CryptoBudget, Security, Verdict

log = logging.getLogger("poisonproof.resolver")
_TC = int(dns.flags.TC)


class Ede:
    """RFC 8914 Extended DNS Error codes used here."""

    OTHER = 0
    STALE = 3
    DNSSEC_BOGUS = 6
    PROHIBITED = 18
    NO_REACHABLE_AUTHORITY = 22
    NETWORK_ERROR = 23


@dataclass(frozen=True)
class ResolverConfig:
    port: int = 53
    """The port of upstream servers (the lab may serve elsewhere)."""
    outgoing_v4: str = "0.0.0.0"
    outgoing_v6: str = "::"
    ipv4: bool = True
    ipv6: bool = True
    query_localhost: bool = False
    """May upstream servers on 127.0.0.0/8 and ::1 be queried (the lab needs it)."""
    forwarders: tuple[tuple[dns.name.Name, tuple[Address, ...]], ...] = ()
    max_upstream: int = 64
    max_ns_names_per_referral: int = 4
    max_servers_per_delegation: int = 13
    max_restarts: int = 11
    max_depth: int = 5
    max_minimise_steps: int = 10
    max_minimise_failures: int = 2
    """Minimised queries of one resolution that may go unanswered (time out, or get a
    reply that cannot be used) before the full name is asked instead, in the rounds left
    (`max_rounds`: with one server, the third try): a server or middlebox that drops NS
    queries, or queries for names it does not know, must not make the name unresolvable
    (Unbound does the same when not told to be strict)."""
    max_rounds: int = 3
    """Times each server of a zone may be tried before the zone counts as unreachable."""
    time_budget: float = 12.0
    zone_fetch_rate: float = 1000.0
    """Upstream queries per second to the servers of any one zone (`fetchlimit`: the
    random-subdomain flood guard, Unbound's `ratelimit`); 0 turns the limit off."""
    zone_fetch_burst: float = 0.0
    """Queries a zone's bucket holds; 0 means one second's worth of `zone_fetch_rate`."""


@dataclass(frozen=True)
class Exchange:
    """One upstream exchange the resolver wants: the driver performs it."""

    query: OutgoingQuery
    tcp: bool
    timeout: float
    source: Address | None
    """Local address and port to send from (UDP); None lets the system choose (TCP)."""
    new_port: Callable[[], int]
    """Another port from the pool, if the chosen one cannot be bound."""
    merge_key: tuple[object, ...] | None
    """Identical outstanding exchanges (same key) may share one (anti-birthday)."""


@dataclass(frozen=True)
class ExchangeResult:
    wire: bytes | None
    error: str | None = None
    rtt: float = 0.0


@dataclass
class TraceEvent:
    server: Address | None
    question: str
    outcome: str
    dropped: list[tuple[str, str]] = field(default_factory=list)
    role: str = ""
    """Who speaks when no server does (e.g. "validator")."""

    def to_text(self) -> str:
        where = f"{self.server[0]}#{self.server[1]}" if self.server else self.role or "cache"
        lines = [f"{where:<24} {self.question:<40} {self.outcome}"]
        lines += [f"{'':<24}   scrubbed {record}: {reason}" for record, reason in self.dropped]
        return "\n".join(lines)


@dataclass
class Budget:
    """Work done for one client query, shared by its nested (glueless) resolutions."""

    started: float
    upstream: int = 0
    resolving: set[tuple[dns.name.Name, int]] = field(default_factory=set)
    trace: list[TraceEvent] = field(default_factory=list)
    tracing: bool = False
    """A caller asked for `trace`: only then are its events (text) made."""
    failure: tuple[int, str] | None = None
    crypto: CryptoBudget = field(default_factory=CryptoBudget)
    hashes: HashBudget = field(default_factory=HashBudget)
    validating: set[dns.name.Name] = field(default_factory=set)
    """Zones whose keys are being established (loop guard)."""
    avoid: set[Address] = field(default_factory=set)
    """Servers that sent data failing validation: asked again only if no other is left."""


class Failure(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


Resolution = Generator[Exchange, ExchangeResult, Answer]


class Resolver:
    """The shared state of one resolver (cache, server knowledge) and its rules."""

    def __init__(
        self,
        *,
        clock: Clock,
        hints: RootHints,
        defenses: Defenses,
        entropy: Entropy,
        config: ResolverConfig = ResolverConfig(),  # noqa: B008 - frozen
        cache: Cache | None = None,
        anchors: TrustAnchors | None = None,
    ) -> None:
        self.clock = clock
        self.hints = hints
        self.defenses = defenses
        self.config = config
        self.cache = cache if cache is not None else Cache(clock, ranked=defenses.credibility)
        self.factory = QueryFactory(defenses, entropy)
        self.infra = Infrastructure(entropy.secure, defenses.unwanted_threshold)
        self.fetch_limit = ZoneFetchLimiter(config.zone_fetch_rate, config.zone_fetch_burst)
        self.stats: dict[str, int] = {}
        self._loopback_skipped = False
        self.anchors = anchors if anchors is not None else TrustAnchors()
        self.chain = TrustChain(self, self.anchors)
        self.answers = CacheAnswers(self)
        self.denials = DenialCache()
        """Validated NSEC/NSEC3 records, for answering what they already deny (RFC 8198)."""

    @property
    def validating(self) -> bool:
        """DNSSEC validation is on and there is an anchor to validate from."""
        return self.defenses.dnssec and bool(self.anchors)

    def count(self, what: str, n: int = 1) -> None:
        self.stats[what] = self.stats.get(what, 0) + n

    # -- entry point ------------------------------------------------------------------

    def resolve(
        self, qname: dns.name.Name, qtype: int, trace: list[TraceEvent] | None = None
    ) -> Resolution:
        """Resolve (qname, qtype); a generator of exchanges returning the `Answer`."""
        budget = Budget(started=self.clock.monotonic())
        if trace is not None:
            budget.trace = trace
            budget.tracing = True
        try:
            return (yield from self._resolve(qname, qtype, budget, depth=0))
        except Failure as failure:
            self.count("servfail")
            return Answer(dns.rcode.SERVFAIL, ede=(failure.code, failure.text), from_cache=False)

    def cached_answer(self, qname: dns.name.Name, qtype: int) -> Answer | None:
        """The answer from the cache alone, or None when the network is needed."""
        prefix = Answer(dns.rcode.NOERROR)
        current = qname
        seen = {qname}
        for _ in range(self.config.max_restarts + 1):
            step = self.answers.step(current, qtype)
            if step is None:
                return None
            if isinstance(step, Answer):
                return joined(prefix, step)
            current = self.answers.add(prefix, step, current)
            if current in seen:
                return Answer(dns.rcode.SERVFAIL, prefix.answer, ede=(Ede.OTHER, "CNAME loop"))
            seen.add(current)
        return None

    # -- resolution with restarts -------------------------------------------------------

    def _resolve(self, qname: dns.name.Name, qtype: int, budget: Budget, depth: int) -> Resolution:
        prefix = Answer(dns.rcode.NOERROR)
        current = qname
        seen = {qname}
        from_cache = True
        for _ in range(self.config.max_restarts + 1):
            step = self.answers.step(current, qtype)
            if isinstance(step, Answer):
                answer = joined(prefix, step)
                answer.from_cache = from_cache
                return answer
            if step is None:
                step = self.answers.synthesized(current, qtype, budget.hashes)
                if isinstance(step, Answer):
                    return joined(prefix, step)
            if step is not None:  # a cached CNAME or DNAME, or one from a cached wildcard
                current = self.answers.add(prefix, step, current)
            else:
                from_cache = False
                scrubbed, verdict = yield from self._iterate_validated(
                    current, qtype, budget, depth
                )
                prefix.answer += [self.cache.as_cached(rrset) for rrset in scrubbed.answer]
                prefix.sigs.update({k: self.cache.as_cached(v) for k, v in scrubbed.sigs.items()})
                prefix.judge(verdict.security, verdict.ede_reason)
                if from_wildcard(scrubbed):
                    prefix.denial += denial_records(scrubbed)  # the wildcard's proof
                if scrubbed.kind is ReplyKind.ANSWER:
                    prefix.from_cache = False
                    return prefix
                if scrubbed.kind in (ReplyKind.NXDOMAIN, ReplyKind.NODATA):
                    soa = (
                        [self.cache.negative_soa(scrubbed.soa)] if scrubbed.soa is not None else []
                    )
                    rcode = (
                        dns.rcode.NXDOMAIN
                        if scrubbed.kind is ReplyKind.NXDOMAIN
                        else dns.rcode.NOERROR
                    )
                    answer = Answer(rcode, prefix.answer, soa, from_cache=False)
                    answer.sigs = prefix.sigs
                    answer.denial = prefix.denial
                    answer.security, answer.bogus, answer.judged = (
                        prefix.security,
                        prefix.bogus,
                        prefix.judged,
                    )
                    answer.denial += denial_records(scrubbed)
                    return answer
                current = scrubbed.final_name  # ReplyKind.CNAME: restart at the target
            if current in seen:
                raise Failure(Ede.OTHER, f"CNAME loop at {current}")
            seen.add(current)
        raise Failure(Ede.OTHER, f"more than {self.config.max_restarts} CNAME/DNAME restarts")

    # -- iteration towards the zone that holds the name --------------------------------

    def _start(
        self, name: dns.name.Name, qtype: int
    ) -> tuple[dns.name.Name, dns.rrset.RRset | None]:
        """The closest cached zone cut (DS is asked of the parent side)."""
        lookup = name.parent() if qtype == dns.rdatatype.DS and name != dns.name.root else name
        ns = self.cache.closest_delegation(lookup)
        if ns is None:
            return dns.name.root, None
        return ns.name, ns

    def _forwarders(self, name: dns.name.Name) -> tuple[dns.name.Name, list[Address]] | None:
        best: tuple[dns.name.Name, list[Address]] | None = None
        for zone, servers in self.config.forwarders:
            if name.is_subdomain(zone) and (best is None or zone.is_subdomain(best[0])):
                best = (zone, list(servers))
        return best

    def _iterate(
        self, name: dns.name.Name, qtype: int, budget: Budget, depth: int
    ) -> Generator[Exchange, ExchangeResult, Scrubbed]:
        forward = self._forwarders(name)
        if forward is not None:
            return (yield from self._ask_forwarders(name, qtype, forward, budget))
        zone, ns = self._start(name, qtype)
        if ns is None:
            ns = yield from self._prime(budget)
        minimise = self.defenses.qname_minimisation
        labels = len(zone.labels) + 1
        minimise_steps = 0
        minimise_failures = 0
        rounds = 1
        tried: set[Address] = set()
        refetched: set[dns.name.Name] = set()
        widened: set[dns.name.Name] = set()
        while True:
            self._check_budget(budget)
            ask_name, ask_type = name, qtype
            if (
                minimise
                and labels < len(name.labels)
                and minimise_steps < self.config.max_minimise_steps
            ):
                labels = self._next_cut_candidate(name, labels)
                if labels < len(name.labels):
                    ask_name, ask_type = name.split(labels)[1], dns.rdatatype.NS
            candidates = yield from self._servers_for(zone, ns, budget, depth, tried)
            if budget.avoid:
                candidates = [c for c in candidates if c not in budget.avoid] or candidates
            now = self.clock.monotonic()
            server = self.infra.choose(candidates, zone, now, tried)
            if server is None and tried and rounds < self.config.max_rounds:
                rounds += 1  # every server failed once: go round again, with longer timeouts
                tried = set()
                server = self.infra.choose(candidates, zone, now, tried)
            if server is None and zone not in widened:
                widened.add(zone)
                child = self.cache.child_ns(zone)
                if child is not None and any(r not in ns for r in child):
                    # the zone's own NS set names servers the parent did not: try them
                    ns = ns.union(child)
                    rounds = 1
                    self.count("child_ns_fallback")
                    continue
            if server is None and zone != dns.name.root and zone not in refetched:
                # every known address failed (or glue expired): ask the parent side again
                refetched.add(zone)
                parent = self.cache.closest_delegation(zone.parent())
                zone, ns = (parent.name, parent) if parent is not None else (dns.name.root, None)
                if ns is None:
                    ns = yield from self._prime(budget)
                labels, rounds, tried = len(zone.labels) + 1, 1, set()
                self.count("delegation_refetch")
                continue
            if server is None:
                raise Failure(Ede.NO_REACHABLE_AUTHORITY, self._unreachable(zone))
            tried.add(server)
            scrubbed = yield from self._ask(server, ask_name, ask_type, zone, budget)
            if scrubbed is None:
                if ask_name != name:
                    minimise_failures += 1
                    if minimise_failures >= self.config.max_minimise_failures:
                        # the minimised question looks blocked: the remaining rounds ask
                        # the full name (no extra ones: a dead server costs no more time)
                        minimise = False
                        self.count("minimise_abandoned")
                continue
            if scrubbed.kind in (ReplyKind.LAME, ReplyKind.ERROR):
                if ask_name != name:
                    minimise = False  # some servers mishandle minimised queries: ask in full
                    tried.discard(server)
                    continue
                if scrubbed.kind is ReplyKind.LAME:
                    self.infra.mark_lame(server, zone, now)
                    self.count("lame")
                continue
            if not (ask_name != name and scrubbed.kind is ReplyKind.NXDOMAIN):
                self._store(scrubbed, ask_name, ask_type)  # (a minimised NXDOMAIN is re-asked)
            if scrubbed.kind is ReplyKind.REFERRAL:
                assert scrubbed.referral_zone is not None and scrubbed.ns is not None
                if self.validating:
                    self.chain.note_referral(scrubbed)
                zone, ns = scrubbed.referral_zone, scrubbed.ns
                labels = len(zone.labels) + 1
                tried = set()
                rounds = 1
                continue
            if ask_name != name:
                if scrubbed.kind is ReplyKind.NXDOMAIN:
                    # RFC 8020 says nothing exists below; but servers that deny empty
                    # non-terminals exist, so ask the full name before believing it
                    minimise = False
                    tried.discard(server)
                    continue
                labels += 1  # an empty non-terminal or a name inside this zone: go deeper
                minimise_steps += 1
                tried.discard(server)
                continue
            return scrubbed

    def _next_cut_candidate(self, name: dns.name.Name, labels: int) -> int:
        """How many labels of `name` the next minimised NS query should reveal, from
        `labels` on: names already known not to be zone cuts (a cached NODATA for their
        NS) are passed over, and at an underscored label (RFC 8552: `_tcp`, `_dmarc`,
        service parameters, never delegated in practice) the full name is asked. Each
        skipped probe is one upstream query saved; the worst a forged NODATA can do here
        is make the parent's server see one more label (it then refers us down as usual).
        """
        while labels < len(name.labels):
            if name.labels[-labels].startswith(b"_"):
                return len(name.labels)
            if not self.cache.known_no_data(name.split(labels)[1], dns.rdatatype.NS):
                return labels
            labels += 1
            self.count("minimise_skipped")
        return labels

    def _iterate_validated(
        self, name: dns.name.Name, qtype: int, budget: Budget, depth: int
    ) -> Generator[Exchange, ExchangeResult, tuple[Scrubbed, Verdict]]:
        """Iterate, then validate; bogus data is asked again of another server."""
        for _attempt in range(BOGUS_RETRIES + 1):
            scrubbed = yield from self._iterate(name, qtype, budget, depth)
            if not self.validating:
                return scrubbed, Verdict(Security.UNCHECKED)
            verdict = yield from self.chain.judge(scrubbed, name, qtype, budget, depth)
            self._mark_negative(scrubbed, qtype, verdict)
            if (
                verdict.security is not Security.BOGUS
                or verdict.from_keys
                or scrubbed.server is None
            ):
                break
            self.count("bogus_retries")
            budget.avoid.add(scrubbed.server)
        if verdict.bogus and not verdict.from_keys:
            chain = yield from self._chain_without_denial(scrubbed, name, qtype, budget, depth)
            if chain is not None:
                return chain
        return scrubbed, verdict

    def _chain_without_denial(
        self, scrubbed: Scrubbed, name: dns.name.Name, qtype: int, budget: Budget, depth: int
    ) -> Generator[Exchange, ExchangeResult, tuple[Scrubbed, Verdict] | None]:
        """A CNAME/DNAME chain with a bogus denial about its target (NXDOMAIN or NODATA
        the target's own NSEC records contradict, say): judged without that denial, and if
        the chain alone is not bogus, returned as a CNAME reply, so the target is looked up
        on its own (from the cache, or asked) instead of the whole answer failing. None
        when there is no such chain or the chain itself is bogus."""
        if scrubbed.kind not in (ReplyKind.NXDOMAIN, ReplyKind.NODATA):
            return None
        if not scrubbed.answer or scrubbed.final_name == name:
            return None
        chain = dataclasses.replace(
            scrubbed, kind=ReplyKind.CNAME, rcode=dns.rcode.NOERROR, soa=None, proofs=[]
        )
        verdict = yield from self.chain.judge(chain, name, qtype, budget, depth)
        if verdict.bogus:
            return None
        # the refused denial was cached (and marked bogus) before it was judged
        nxdomain = scrubbed.kind is ReplyKind.NXDOMAIN
        self.cache.forget_negative(scrubbed.final_name, None if nxdomain else qtype)
        self.count("bogus_denial_after_chain")
        if budget.tracing:
            budget.trace.append(
                TraceEvent(
                    scrubbed.server,
                    f"{scrubbed.final_name} {dns.rdatatype.to_text(qtype)}",
                    "bogus denial of the chain's target dropped: the target is asked alone",
                )
            )
        return chain, verdict

    def fetch(
        self, name: dns.name.Name, qtype: int, budget: Budget, depth: int
    ) -> Generator[Exchange, ExchangeResult, Scrubbed | str]:
        """One unvalidated lookup for the chain of trust (DS, DNSKEY); failure as text."""
        if depth >= self.config.max_depth + 20:
            return "chain of trust too deep"
        try:
            return (yield from self._iterate(name, qtype, budget, depth + 1))
        except Failure as failure:
            return failure.text

    def _mark_negative(self, scrubbed: Scrubbed, qtype: int, verdict: Verdict) -> None:
        if scrubbed.kind is ReplyKind.NXDOMAIN:
            rdtype: int | None = None
        elif scrubbed.kind is ReplyKind.NODATA:
            rdtype = qtype
        else:
            return
        self.cache.mark_negative(scrubbed.final_name, rdtype, verdict.security, verdict.ede_reason)

    def _prime(self, budget: Budget) -> Generator[Exchange, ExchangeResult, dns.rrset.RRset]:
        """Ask a root hint for `. NS`; on failure iterate from the hints themselves."""
        hints = self.hints
        for target, addresses in hints.addresses.items():
            for rdtype, address in zip(
                [dns.rdatatype.AAAA if ":" in a else dns.rdatatype.A for a in addresses],
                addresses,
                strict=True,
            ):
                self.cache.put(
                    dns.rrset.from_text(
                        target, 3_600_000, "IN", dns.rdatatype.to_text(rdtype), address
                    ),
                    Rank.GLUE,
                )
        tried: set[Address] = set()
        for _ in range(3):
            candidates = self._usable([(a, self.config.port) for a in hints.all_addresses()])
            server = self.infra.choose(candidates, dns.name.root, self.clock.monotonic(), tried)
            if server is None:
                break
            tried.add(server)
            scrubbed = yield from self._ask(
                server, dns.name.root, dns.rdatatype.NS, dns.name.root, budget
            )
            if scrubbed is not None and scrubbed.kind is ReplyKind.ANSWER:
                self._store(scrubbed, dns.name.root, dns.rdatatype.NS)
                ns = self.cache.get(dns.name.root, dns.rdatatype.NS, Rank.GLUE)
                if ns is not None:
                    self.count("primed")
                    return ns
        return hints.ns

    def _unreachable(self, zone: dns.name.Name) -> str:
        text = f"no reachable server for {zone}"
        if not self.config.query_localhost and self._loopback_skipped:
            text += " (its servers are on loopback: allow with query-localhost on)"
        return text

    def _usable(self, servers: list[Address]) -> list[Address]:
        usable = []
        for address, port in servers:
            version, loopback, never = _address_kind(address)
            if version == 4 and not self.config.ipv4:
                continue
            if version == 6 and not self.config.ipv6:
                continue
            if loopback and not self.config.query_localhost:
                self._loopback_skipped = True
                continue
            if never:
                continue
            usable.append((address, port))
        return usable

    def _servers_for(
        self,
        zone: dns.name.Name,
        ns: dns.rrset.RRset,
        budget: Budget,
        depth: int,
        tried: set[Address],
    ) -> Generator[Exchange, ExchangeResult, list[Address]]:
        """Addresses of the zone's name servers: cached/glue first, then glueless lookups."""
        rdtypes = tuple(
            t
            for t, on in (
                (dns.rdatatype.A, self.config.ipv4),
                (dns.rdatatype.AAAA, self.config.ipv6),
            )
            if on
        )
        targets = [r.target for r in ns][: self.config.max_servers_per_delegation]  # type: ignore[attr-defined]
        now = self.clock.monotonic()

        def known() -> list[Address]:
            found = []
            for target in targets:
                found += [(a, self.config.port) for a in self.cache.addresses(target, rdtypes)]
            return self._usable(found)

        candidates = known()
        looked_up = 0
        for target in targets:
            if any(
                a not in tried and a not in budget.avoid and not self.infra.is_lame(a, zone, now)
                for a in candidates
            ):
                break
            if looked_up >= self.config.max_ns_names_per_referral:
                self.count("ns_lookup_limit")
                break
            if self.cache.addresses(target, rdtypes):
                continue
            if target.is_subdomain(zone) or depth >= self.config.max_depth:
                continue  # in-zone name server without glue: asking would loop
            key = (target, int(rdtypes[0]) if rdtypes else 1)
            if key in budget.resolving:
                continue  # already being resolved further up: a loop
            looked_up += 1
            budget.resolving.add(key)
            try:
                for rdtype in rdtypes:
                    # the answer is cached by the resolution itself, at its own rank
                    yield from self._resolve(target, rdtype, budget, depth + 1)
            except Failure:
                self.count("glueless_failed")
            finally:
                budget.resolving.discard(key)
            candidates = known()
        return candidates

    # -- one question to one server ------------------------------------------------------

    def _check_budget(self, budget: Budget) -> None:
        if budget.upstream >= self.config.max_upstream:
            self.count("upstream_limit")
            raise Failure(Ede.OTHER, f"gave up after {budget.upstream} upstream queries")
        if self.clock.monotonic() - budget.started > self.config.time_budget:
            self.count("time_limit")
            raise Failure(
                Ede.NO_REACHABLE_AUTHORITY, f"no answer within {self.config.time_budget:.0f}s"
            )

    def _ask(
        self,
        server: Address,
        name: dns.name.Name,
        qtype: int,
        zone: dns.name.Name,
        budget: Budget,
        recursion_desired: bool = False,
    ) -> Generator[Exchange, ExchangeResult, Scrubbed | None]:
        """Ask `server` (authoritative for `zone`) about (name, qtype); None if it failed."""
        defenses = self.defenses
        state = self.infra.state(server)
        tcp = self.infra.tcp_only(zone, self.clock.monotonic())
        question = f"{name} {dns.rdatatype.to_text(qtype)}" if budget.tracing else ""
        for _attempt in range(4):
            self._check_budget(budget)
            if not self.fetch_limit.allow(zone, self.clock.monotonic()):
                self.count("zone_fetch_limited")
                raise Failure(Ede.OTHER, f"fetch limit for {zone} reached")
            budget.upstream += 1
            self.count("upstream_tcp" if tcp else "upstream_udp")
            query = self.factory.make(
                name,
                qtype,
                server,
                use_0x20=defenses.case_randomization and not state.no_caps,
                use_edns=not state.no_edns,
                server_cookie=state.server_cookie,
                dnssec_ok=self.validating,
                recursion_desired=recursion_desired,
            )
            query.require_cookie = defenses.cookies and state.server_cookie is not None
            outgoing = self.config.outgoing_v6 if ":" in server[0] else self.config.outgoing_v4
            exchange = Exchange(
                query=query,
                tcp=tcp,
                timeout=state.timeout(),
                source=None if tcp else (outgoing, self.factory.source_port()),
                new_port=self.factory.source_port,
                merge_key=(name, qtype, server)  # names compare and hash case-blind
                if defenses.merge_duplicates and not tcp
                else None,
            )
            result = yield exchange
            now = self.clock.monotonic()
            if query.log.unwanted:
                self.count("unwanted_replies", query.log.unwanted)
                self.count("near_misses", query.log.near_misses)
                self.count("case_mismatches", query.log.wrong_case)
                if self.infra.count_unwanted(zone, query.log.unwanted, now):
                    self.count("spoof_alarms")
            if result.wire is None:
                self.infra.record_timeout(server)
                self.count("timeouts")
                if query.log.wrong_case and not query.log.wrong_id and not tcp:
                    state.no_caps = True  # replies came, but never with our case
                    continue
                budget.trace.append(TraceEvent(server, question, f"no reply ({result.error})"))
                return None
            self.infra.record_rtt(server, result.rtt)
            if query.log.near_misses and defenses.nearmiss_tcp and not tcp:
                budget.trace.append(
                    TraceEvent(
                        server, question, f"{query.log.near_misses} near misses: retry over TCP"
                    )
                )
                self.count("nearmiss_tcp_retries")
                tcp = True
                continue
            try:
                reply = query.parsed(result.wire)  # check() parsed what it accepted
                if reply is None:
                    self.count("too_costly_replies")
                    raise ValueError("names too costly to decompress (a compression bomb)")
            except Exception as error:
                budget.trace.append(TraceEvent(server, question, f"unparsable reply: {error}"))
                return None
            if tcp and not self._tcp_reply_matches(reply, query, state):
                budget.trace.append(TraceEvent(server, question, "TCP reply to another question"))
                return None
            query.accepted(reply)
            if query.log.server_cookie is not None:
                state.server_cookie = query.log.server_cookie
            if int(reply.flags) & _TC and not tcp:
                budget.trace.append(TraceEvent(server, question, "truncated: retry over TCP"))
                tcp = True
                continue
            if reply.rcode() in (dns.rcode.FORMERR, dns.rcode.NOTIMP) and not state.no_edns:
                state.no_edns = True
                continue
            bailiwick = defenses.bailiwick
            if recursion_desired and not defenses.forwarder_bailiwick:
                bailiwick = False  # MaginotDNS-class: forwarder answers believed whole
            scrubbed = scrub(reply, name, qtype, zone, bailiwick=bailiwick)
            scrubbed.server = server
            if scrubbed.dropped:
                self.count("scrubbed_records", len(scrubbed.dropped))
            if budget.tracing:
                budget.trace.append(
                    TraceEvent(server, question, _describe(scrubbed), scrubbed.dropped)
                )
            return scrubbed
        return None

    def _tcp_reply_matches(
        self, reply: dns.message.Message, query: OutgoingQuery, state: object
    ) -> bool:
        if reply.id != query.txid or len(reply.question) != 1:
            return False
        question = reply.question[0]
        if question.name != query.sent_name or question.rdtype != query.qtype:
            return False
        if query.exact_case and question.name.to_wire() != query.sent_name.to_wire():
            self.infra.state(query.server).no_caps = True  # TCP cannot be forged off-path
        return True

    def _ask_forwarders(
        self,
        name: dns.name.Name,
        qtype: int,
        forward: tuple[dns.name.Name, list[Address]],
        budget: Budget,
    ) -> Generator[Exchange, ExchangeResult, Scrubbed]:
        zone, servers = forward
        tried: set[Address] = set()
        while True:
            server = self.infra.choose(servers, zone, self.clock.monotonic(), tried)
            if server is None:
                raise Failure(Ede.NO_REACHABLE_AUTHORITY, f"no forwarder for {zone} answered")
            tried.add(server)
            scrubbed = yield from self._ask(
                server, name, qtype, zone, budget, recursion_desired=True
            )
            if scrubbed is None or scrubbed.kind in (
                ReplyKind.LAME,
                ReplyKind.ERROR,
                ReplyKind.REFERRAL,
            ):
                continue
            self._store(scrubbed, name, qtype)
            return scrubbed

    # -- the cache ------------------------------------------------------------------------

    def _store(self, scrubbed: Scrubbed, name: dns.name.Name, qtype: int) -> None:
        for rrset, rank in scrubbed.to_cache:
            self.cache.put(rrset, rank, scrubbed.sig(rrset))
        if scrubbed.child_ns is not None:
            self.cache.put_child_ns(scrubbed.child_ns)
        rank = Rank.AUTHORITY_AUTH if scrubbed.authoritative else Rank.AUTHORITY_NONAUTH
        proofs = tuple(denial_records(scrubbed))
        if scrubbed.kind is ReplyKind.NXDOMAIN:
            self.cache.put_negative(scrubbed.final_name, None, scrubbed.soa, rank, proofs)
        elif scrubbed.kind is ReplyKind.NODATA:
            self.cache.put_negative(scrubbed.final_name, qtype, scrubbed.soa, rank, proofs)


@functools.lru_cache(maxsize=4096)
def _address_kind(address: str) -> tuple[int, bool, bool]:
    """(IP version, loopback, unspecified or multicast) of a server address, remembered:
    the same few name server addresses are classified on every step of every resolution."""
    ip = ipaddress.ip_address(address)
    return ip.version, ip.is_loopback, ip.is_unspecified or ip.is_multicast


def _describe(scrubbed: Scrubbed) -> str:
    kind = scrubbed.kind
    if kind is ReplyKind.REFERRAL:
        assert scrubbed.ns is not None
        names = ", ".join(str(r.target) for r in scrubbed.ns)  # type: ignore[attr-defined]
        return f"referral to {scrubbed.referral_zone} ({names}; {len(scrubbed.glue)} glue)"
    if kind in (ReplyKind.ANSWER, ReplyKind.CNAME):
        return f"{kind.value}: " + "; ".join(
            f"{r.name} {dns.rdatatype.to_text(r.rdtype)} {' '.join(x.to_text() for x in r)}"
            for r in scrubbed.answer
        )
    if kind in (ReplyKind.LAME, ReplyKind.ERROR):
        return f"{kind.value}: {scrubbed.reason}"
    return kind.value

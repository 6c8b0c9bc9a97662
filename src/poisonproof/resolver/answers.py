"""What the cache can answer, and the `Answer` a resolution returns.

Owns: the `Answer` value (sections, the Extended DNS Error, the DNSSEC state folded from
its parts, the RRSIGs and denial records a DO client is shown), one step of answering
from the cache (an RRset, a CNAME to follow, a DNAME and its substitution, a negative
answer; data validation never judged though an anchor covers it is not an answer), and
negative answers synthesized from validated NSEC/NSEC3 records, and positive ones from a
kept wildcard for a name they show absent (RFC 8198 §5.3).
Must never: send queries or validate signatures (the iterator and the chain do).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from poisonproof.resolver.cache import ANSWERABLE, Cached
from poisonproof.resolver.denial import HashBudget
from poisonproof.resolver.scrubber import ReplyKind, Scrubbed
from poisonproof.resolver.validator import Security, owner_labels

if TYPE_CHECKING:
    from poisonproof.resolver.iterator import Resolver

SigKey = tuple[dns.name.Name, int]


@dataclass
class Answer:
    rcode: int
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    ede: tuple[int, str] | None = None
    from_cache: bool = True
    security: Security = Security.UNCHECKED
    bogus: tuple[int, str] | None = None
    """Why validation failed (EDE code, text): SERVFAIL unless the client set CD."""
    sigs: dict[SigKey, dns.rrset.RRset] = field(default_factory=dict)
    """RRSIGs of the answer's RRsets (sent to DO clients)."""
    denial: list[dns.rrset.RRset] = field(default_factory=list)
    """NSEC/NSEC3 records and the RRSIGs of the denial (sent to DO clients)."""

    judged: bool = False

    def judge(self, security: Security, reason: tuple[int, str] | None) -> None:
        """Fold one part's validation state in: bogus if any part is, secure if all are."""
        if self.judged and _STRENGTH[security] >= _STRENGTH[self.security]:
            return
        self.security, self.bogus, self.judged = security, reason, True


_STRENGTH = {Security.BOGUS: 0, Security.UNCHECKED: 1, Security.INSECURE: 2, Security.SECURE: 3}


class CacheAnswers:
    """Answering from one resolver's cache (and its validated denial records)."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self._last_miss: tuple[dns.name.Name, int, int] | None = None
        """(name, type, cache writes) of the last `step` that found nothing: asked again
        before the cache changed (the frontend's probe, then the resolution's first
        step), the answer is still nothing."""

    def add(self, answer: Answer, step: Cached, name: dns.name.Name) -> dns.name.Name:
        """Append a cached CNAME (or DNAME and its substitution) for `name` to `answer`;
        the name it points to."""
        answer.answer.append(step.rrset)
        answer.denial += step.proofs
        if step.sigs is not None:
            answer.sigs[(step.rrset.name, int(step.rrset.rdtype))] = step.sigs
        answer.judge(step.security, step.reason)
        target: dns.name.Name = step.rrset[0].target  # type: ignore[attr-defined]
        if step.rrset.rdtype == dns.rdatatype.DNAME:
            target = name.relativize(step.rrset.name).derelativize(target)
            answer.answer.append(
                dns.rrset.from_text(name, step.rrset.ttl, "IN", "CNAME", target.to_text())
            )
        return target

    def _dname(self, name: dns.name.Name) -> Cached | None:
        """A cached DNAME above `name` whose substitution fits (RFC 6672)."""
        if not self.resolver.cache.dname_count:
            return None
        ancestor = name
        while len(ancestor.labels) > 1:
            ancestor = ancestor.parent()
            dname = self.resolver.cache.get_cached(ancestor, dns.rdatatype.DNAME, ANSWERABLE)
            if dname is not None:
                try:
                    name.relativize(ancestor).derelativize(dname.rrset[0].target)  # type: ignore[attr-defined]
                except dns.name.NameTooLong:
                    return None
                return dname
        return None

    def step(self, name: dns.name.Name, qtype: int) -> Answer | Cached | None:
        """What the cache holds for (name, qtype): an answer, a CNAME or DNAME to follow,
        or None (the network is needed)."""
        writes = self.resolver.cache.writes
        if self._last_miss == (name, qtype, writes):
            return None
        found = self._step(name, qtype)
        if found is None:
            self._last_miss = (name, qtype, writes)
        return found

    def _step(self, name: dns.name.Name, qtype: int) -> Answer | Cached | None:
        cached = self.resolver.cache.get_cached(name, qtype, ANSWERABLE)
        if cached is not None and self.unjudged(name, qtype, cached.security):
            return None  # cached by an internal lookup (keys, priming, a minimised probe)
        if cached is not None:
            answer = Answer(dns.rcode.NOERROR, [cached.rrset], denial=list(cached.proofs))
            if cached.sigs is not None:
                answer.sigs[(cached.rrset.name, int(cached.rrset.rdtype))] = cached.sigs
            answer.judge(cached.security, cached.reason)
            return answer
        if qtype != dns.rdatatype.CNAME:
            cname = self.resolver.cache.get_cached(name, dns.rdatatype.CNAME, ANSWERABLE)
            if cname is not None and not self.unjudged(name, qtype, cname.security):
                return cname
        if qtype != dns.rdatatype.DNAME:
            dname = self._dname(name)
            if dname is not None and self.unjudged(name, qtype, dname.security):
                return None
            if dname is not None and qtype == dns.rdatatype.CNAME:
                answer = Answer(dns.rcode.NOERROR)  # the synthesized CNAME is the answer
                self.add(answer, dname, name)
                return answer
            if dname is not None:
                return dname
        negative = self.resolver.cache.get_negative(name, qtype)
        if negative is not None and self.unjudged(name, qtype, negative.security):
            return None
        if negative is not None:
            rcode = dns.rcode.NXDOMAIN if negative.nxdomain else dns.rcode.NOERROR
            answer = Answer(rcode, [], [negative.soa] if negative.soa is not None else [])
            answer.denial = list(negative.proofs)
            answer.judge(negative.security, negative.reason)
            return answer
        return None

    def synthesized(
        self, name: dns.name.Name, qtype: int, hashes: HashBudget
    ) -> Answer | Cached | None:
        """From cached, validated NSEC/NSEC3 records (RFC 8198): a negative answer they
        prove, or the answer of a kept wildcard for a name they show does not exist (a
        CNAME, to follow, when the wildcard holds one and another type is asked)."""
        if not self.resolver.validating or not len(self.resolver.denials):
            return None
        now = self.resolver.clock.wall()
        found = self.resolver.denials.lookup(name, qtype, now, hashes)
        if found is None:
            return self._from_wildcard(name, qtype, now, hashes)
        if not self.resolver.chain.is_secure(found.zone):
            return None
        self.resolver.count("aggressive_nsec")
        rcode = dns.rcode.NXDOMAIN if found.nxdomain else dns.rcode.NOERROR
        answer = Answer(rcode, [], [found.soa], denial=list(found.records))
        answer.judge(Security.SECURE, None)
        return answer

    def _from_wildcard(
        self, name: dns.name.Name, qtype: int, now: float, hashes: HashBudget
    ) -> Answer | Cached | None:
        found = self.resolver.denials.wildcard(name, qtype, now, hashes)
        if found is None or not self.resolver.chain.is_secure(found.zone):
            return None
        self.resolver.count("aggressive_wildcard")
        if found.rrset.rdtype != qtype:  # a CNAME: the caller follows it
            return Cached(found.rrset, found.sigs, Security.SECURE, None, found.records)
        answer = Answer(dns.rcode.NOERROR, [found.rrset], denial=list(found.records))
        answer.sigs[(name, int(qtype))] = found.sigs
        answer.judge(Security.SECURE, None)
        return answer

    def unjudged(self, name: dns.name.Name, qtype: int, security: Security) -> bool:
        """Cached data validation never saw, though an anchor covers it: not an answer."""
        if security is not Security.UNCHECKED or not self.resolver.validating:
            return False
        if qtype == dns.rdatatype.DS and name != dns.name.root:
            name = name.parent()
        return self.resolver.chain.covers(name)


def from_wildcard(scrubbed: Scrubbed) -> bool:
    """Does a signature in the answer chain say its RRset was expanded from a wildcard?"""
    if not scrubbed.proofs or scrubbed.kind not in (ReplyKind.ANSWER, ReplyKind.CNAME):
        return False
    for rrset in scrubbed.answer:
        sigs = scrubbed.sig(rrset)
        if sigs is not None and any(s.labels < owner_labels(rrset.name) for s in sigs):  # type: ignore[attr-defined]
            return True
    return False


def denial_records(scrubbed: Scrubbed) -> list[dns.rrset.RRset]:
    """What a DO client is shown of a denial: the SOA's RRSIG, NSEC/NSEC3 and their RRSIGs."""
    out: list[dns.rrset.RRset] = []
    if scrubbed.soa is not None and (sig := scrubbed.sig(scrubbed.soa)) is not None:
        out.append(sig)
    return out + scrubbed.signed_proofs()


def joined(prefix: Answer, step: Answer) -> Answer:
    """A cached final `step` after the CNAMEs gathered in `prefix`."""
    if not prefix.answer:
        return step
    answer = Answer(
        step.rcode,
        prefix.answer + step.answer,
        step.authority,
        step.ede,
        sigs={**prefix.sigs, **step.sigs},
        denial=prefix.denial + step.denial,  # a wildcard CNAME's proof, then the end's
    )
    answer.security, answer.bogus, answer.judged = prefix.security, prefix.bogus, prefix.judged
    answer.judge(step.security, step.bogus)
    return answer

"""The chain of trust: from a trust anchor down to the keys of the zone that signed a reply.

Owns: the validated-key cache (per zone: secure keys, provably insecure, or bogus with the
reason), walking DS -> DNSKEY from the closest trust anchor down through each zone cut
(using the DS or the no-DS proof a referral carried before asking for it), and judging a
classified reply (answer chain, wildcard expansion, NXDOMAIN, NODATA) as secure, insecure
or bogus. It fetches DS and DNSKEY sets through the resolver's own iteration, so it is a
generator of exchanges like the iterator.
Must never: do I/O, read the system clock, or check a signature itself (`validator`) or
prove a denial itself (`denial`).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dns.dnssec
import dns.name
import dns.rdatatype
import dns.rrset

from poisonproof.resolver.anchors import TrustAnchors
from poisonproof.resolver.cache import Rank
from poisonproof.resolver.denial import (
    DenialStatus,
    prove_no_ds,
    prove_nodata,
    prove_nxdomain,
    prove_wildcard_answer,
)
from poisonproof.resolver.scrubber import ReplyKind, Scrubbed
from poisonproof.resolver.validator import (
    Ede,
    Security,
    Verdict,
    bogus,
    signer_of,
    verify_dnskeys,
    verify_rrset,
)

if TYPE_CHECKING:
    from poisonproof.resolver.iterator import Budget, Exchange, ExchangeResult, Resolver

BOGUS_RETRIES = 2
"""Other servers asked after one sent keys or DS records that fail validation."""
BOGUS_TTL = 60
"""Seconds a bogus verdict on a zone's keys is kept (Unbound's val-bogus-ttl)."""
MAX_CHAIN_DEPTH = 24
MAX_UNSIGNED_WALK = 8
"""DS lookups spent looking for the unsigned cut above unsigned data in a signed zone."""


@dataclass(frozen=True)
class KeyEntry:
    """What is known of one zone's keys."""

    security: Security
    keys: dns.rrset.RRset | None = None
    reason: str = ""
    ede: int | None = None
    expires: float = 0.0

    def verdict(self) -> Verdict:
        return Verdict(self.security, self.reason, self.ede, from_keys=True)


@dataclass(frozen=True)
class _ReferralNote:
    parent: dns.name.Name
    ds: dns.rrset.RRset | None
    ds_sigs: dns.rrset.RRset | None
    proofs: tuple[dns.rrset.RRset, ...]
    sigs: tuple[dns.rrset.RRset, ...]
    expires: float
    server: tuple[str, int] | None


Steps = Generator["Exchange", "ExchangeResult", KeyEntry]
Judging = Generator["Exchange", "ExchangeResult", Verdict]


def combine(verdicts: list[Verdict]) -> Verdict:
    """Bogus if any part is, secure only if every part is."""
    for verdict in verdicts:
        if verdict.security is Security.BOGUS:
            return verdict
    for state in (Security.UNCHECKED, Security.INSECURE):
        for verdict in verdicts:
            if verdict.security is state:
                return verdict
    return verdicts[0] if verdicts else Verdict(Security.UNCHECKED)


class TrustChain:
    def __init__(self, resolver: Resolver, anchors: TrustAnchors) -> None:
        self.resolver = resolver
        self.anchors = anchors
        self._keys: dict[dns.name.Name, KeyEntry] = {}
        self._referrals: dict[dns.name.Name, _ReferralNote] = {}
        self._blame: tuple[str, int] | None = None
        """The server whose data the last key lookup failed on."""

    def _now(self) -> float:
        return self.resolver.clock.wall()

    def is_secure(self, zone: dns.name.Name) -> bool:
        """The zone's keys are known and secure right now (no lookup)."""
        entry = self._keys.get(zone.canonicalize())
        return (
            entry is not None and entry.expires > self._now() and entry.security is Security.SECURE
        )

    def covers(self, name: dns.name.Name) -> bool:
        return self.anchors.closest(name) is not None

    def flush(self) -> None:
        self._keys.clear()
        self._referrals.clear()

    # -- what a referral said about the child's keys ---------------------------------

    def note_referral(self, scrubbed: Scrubbed) -> None:
        cut = scrubbed.referral_zone
        if cut is None or not self.covers(cut):
            return
        ds_sigs = scrubbed.sig(scrubbed.ds) if scrubbed.ds is not None else None
        sigs = tuple(scrubbed.proof_sigs())
        if scrubbed.ds is None and not scrubbed.proofs:
            return
        ttl = min(
            [r.ttl for r in (scrubbed.ds, ds_sigs) if r is not None]
            + [r.ttl for r in scrubbed.proofs]
            or [0]
        )
        self._referrals[cut.canonicalize()] = _ReferralNote(
            scrubbed.zone,
            scrubbed.ds,
            ds_sigs,
            tuple(scrubbed.proofs),
            sigs,
            self._now() + min(ttl, 3600),
            scrubbed.server,
        )

    # -- keys of a zone ---------------------------------------------------------------

    def keys(self, zone: dns.name.Name, budget: Budget, depth: int = 0) -> Steps:
        zone = zone.canonicalize()
        now = self._now()
        cached = self._keys.get(zone)
        if cached is not None and cached.expires > now:
            return cached
        anchor = self.anchors.closest(zone)
        if anchor is None:
            return KeyEntry(Security.UNCHECKED)
        if zone in budget.validating or depth > MAX_CHAIN_DEPTH:
            return KeyEntry(Security.BOGUS, reason=f"the chain of trust loops at {zone}")
        budget.validating.add(zone)
        use_referral = True
        refetched = False
        try:
            for _attempt in range(BOGUS_RETRIES + 2):
                self._blame = None
                if zone == anchor:
                    entry = yield from self._anchored_keys(zone, budget, depth)
                else:
                    entry = yield from self._delegated_keys(
                        zone, anchor, budget, depth, use_referral
                    )
                if entry.security is not Security.BOGUS:
                    break
                if self._blame is None or self._blame in budget.avoid:
                    # no other server left: the delegation itself may be forged (a
                    # poisoned NS set): forget it and ask the parent again, once
                    if refetched or zone == anchor:
                        break
                    refetched = True
                    self._forget_delegation(zone, budget)
                    self.resolver.count("delegation_refetch_bogus")
                    continue
                budget.avoid.add(self._blame)  # ask another server of the zone
                use_referral = False
                self.resolver.count("bogus_retries")
        finally:
            budget.validating.discard(zone)
        ttl = BOGUS_TTL if entry.security is Security.BOGUS else 3600
        if entry.keys is not None:
            ttl = min(ttl, entry.keys.ttl)
        entry = KeyEntry(entry.security, entry.keys, entry.reason, entry.ede, now + ttl)
        self._keys[zone] = entry
        _note(budget, f"{zone} DNSKEY", _describe_keys(entry, self.anchors.closest(zone)))
        self.resolver.count(f"keys_{entry.security.value}")
        return entry

    def _fetch_dnskeys(
        self, zone: dns.name.Name, budget: Budget, depth: int
    ) -> Generator[
        Exchange, ExchangeResult, tuple[dns.rrset.RRset, dns.rrset.RRset | None] | KeyEntry
    ]:
        scrubbed = yield from self.resolver.fetch(zone, dns.rdatatype.DNSKEY, budget, depth)
        if not isinstance(scrubbed, str):
            self._blame = scrubbed.server
        if isinstance(scrubbed, str):
            return KeyEntry(
                Security.BOGUS, reason=f"DNSKEY of {zone}: {scrubbed}", ede=Ede.DNSKEY_MISSING
            )
        rrset = next(
            (r for r in scrubbed.answer if r.rdtype == dns.rdatatype.DNSKEY and r.name == zone),
            None,
        )
        if scrubbed.kind is not ReplyKind.ANSWER or rrset is None:
            return KeyEntry(
                Security.BOGUS,
                reason=f"{zone} has no DNSKEY set ({scrubbed.kind.value})",
                ede=Ede.DNSKEY_MISSING,
            )
        return rrset, scrubbed.sig(rrset)

    def _anchored_keys(self, zone: dns.name.Name, budget: Budget, depth: int) -> Steps:
        if zone not in self.anchors.ds and zone not in self.anchors.dnskey:
            return KeyEntry(
                Security.BOGUS,
                reason=f"the anchor of {zone} matches no key: {self.anchors.malformed[zone]}",
                ede=Ede.DNSKEY_MISSING,
            )
        fetched = yield from self._fetch_dnskeys(zone, budget, depth)
        if isinstance(fetched, KeyEntry):
            return fetched
        dnskeys, sigs = fetched
        verdict = verify_dnskeys(
            dnskeys,
            sigs,
            zone,
            self._now(),
            budget.crypto,
            ds_set=self.anchors.ds.get(zone),
            anchor_keys=self.anchors.dnskey.get(zone),
        )
        return self._entry(verdict, dnskeys)

    def _entry(self, verdict: Verdict, dnskeys: dns.rrset.RRset) -> KeyEntry:
        self._mark(dnskeys, verdict)
        if verdict.security is Security.SECURE:
            keys = dnskeys.copy()
            if verdict.ttl is not None:
                keys.ttl = verdict.ttl
            return KeyEntry(Security.SECURE, keys)
        return KeyEntry(verdict.security, reason=verdict.reason, ede=verdict.ede)

    def _parent_keys(
        self,
        signer: dns.name.Name | None,
        zone: dns.name.Name,
        anchor: dns.name.Name,
        fallback_parent: dns.name.Name,
        budget: Budget,
        depth: int,
    ) -> Steps:
        """Keys of the zone whose data speaks of `zone`'s DS; unsigned data: its parent's."""
        if signer is not None and (
            signer == zone or not zone.is_subdomain(signer) or not signer.is_subdomain(anchor)
        ):
            return KeyEntry(
                Security.BOGUS, reason=f"the DS of {zone} is signed by {signer}, not its parent"
            )
        parent = signer if signer is not None else fallback_parent
        if not parent.is_subdomain(anchor):
            parent = anchor
        entry = yield from self.keys(parent, budget, depth + 1)
        if signer is None and entry.security is Security.SECURE:
            return KeyEntry(
                Security.BOGUS,
                reason=f"the parent's answer about the DS of {zone} is unsigned",
                ede=Ede.RRSIGS_MISSING,
            )
        return entry

    def _delegated_keys(
        self,
        zone: dns.name.Name,
        anchor: dns.name.Name,
        budget: Budget,
        depth: int,
        use_referral: bool = True,
    ) -> Steps:
        note = self._referrals.get(zone) if use_referral else None
        if note is not None and note.expires <= self._now():
            note = None
        if note is not None:
            ds, ds_sigs = note.ds, note.ds_sigs
            proofs, proof_sigs = list(note.proofs), list(note.sigs)
            parent_side = note.parent
            kind = ReplyKind.REFERRAL
            self._blame = note.server
        else:
            scrubbed = yield from self.resolver.fetch(zone, dns.rdatatype.DS, budget, depth)
            if isinstance(scrubbed, str):
                return KeyEntry(
                    Security.BOGUS, reason=f"DS of {zone}: {scrubbed}", ede=Ede.DNSKEY_MISSING
                )
            kind = scrubbed.kind
            ds = next(
                (r for r in scrubbed.answer if r.rdtype == dns.rdatatype.DS and r.name == zone),
                None,
            )
            ds_sigs = scrubbed.sig(ds) if ds is not None else None
            proofs = list(scrubbed.proofs)
            if scrubbed.soa is not None:
                proofs.append(scrubbed.soa)
            proof_sigs = [s for p in proofs if (s := scrubbed.sig(p)) is not None]
            parent_side = scrubbed.zone
            self._blame = scrubbed.server
        if ds is not None:
            signer = signer_of(ds, ds_sigs)
            parent = yield from self._parent_keys(signer, zone, anchor, parent_side, budget, depth)
            if parent.security is not Security.SECURE:
                self._blame = None
                return parent
            assert parent.keys is not None and signer is not None
            verdict = verify_rrset(ds, ds_sigs, signer, parent.keys, self._now(), budget.crypto)
            self._mark(ds, verdict)
            if verdict.security is not Security.SECURE:
                return KeyEntry(verdict.security, reason=verdict.reason, ede=verdict.ede)
            fetched = yield from self._fetch_dnskeys(zone, budget, depth)
            if isinstance(fetched, KeyEntry):
                return fetched
            dnskeys, sigs = fetched
            verdict = verify_dnskeys(dnskeys, sigs, zone, self._now(), budget.crypto, ds_set=ds)
            return self._entry(verdict, dnskeys)
        if kind not in (ReplyKind.NODATA, ReplyKind.NXDOMAIN, ReplyKind.REFERRAL):
            return KeyEntry(Security.BOGUS, reason=f"no usable answer about the DS of {zone}")
        signer = next(
            (s for p in proofs if (s := signer_of(p, _sig_in(p, proof_sigs))) is not None), None
        )
        parent = yield from self._parent_keys(signer, zone, anchor, parent_side, budget, depth)
        if parent.security is not Security.SECURE:
            self._blame = None
            return parent
        assert parent.keys is not None and signer is not None
        checked = self._verify_all(proofs, proof_sigs, signer, parent.keys, budget)
        if checked.security is not Security.SECURE:
            return KeyEntry(checked.security, reason=checked.reason, ede=checked.ede)
        denial = prove_no_ds(zone, signer, proofs, budget.hashes)
        if denial.status is DenialStatus.BOGUS and kind is ReplyKind.NODATA:
            inside = prove_nodata(zone, dns.rdatatype.DS, signer, proofs, budget.hashes)
            if inside.status is DenialStatus.SECURE:
                # a name inside the parent's zone, not a cut: it has the parent's keys
                return KeyEntry(parent.security, parent.keys, f"{zone} is not a zone cut")
        if denial.status is DenialStatus.BOGUS:
            return KeyEntry(
                Security.BOGUS,
                reason=f"no proof that {zone} has no DS: {denial.reason}",
                ede=Ede.NSEC_MISSING,
            )
        return KeyEntry(Security.INSECURE, reason=f"{zone} is an unsigned delegation")

    def _forget_delegation(self, zone: dns.name.Name, budget: Budget) -> None:
        """Drop what the cache holds of `zone`'s servers, so the parent is asked again."""
        cache = self.resolver.cache
        ns = cache.get(zone, dns.rdatatype.NS, min_rank=Rank.GLUE)
        cache.forget(zone, dns.rdatatype.NS)
        for target in [r.target for r in ns] if ns is not None else []:  # type: ignore[attr-defined]
            if target.is_subdomain(zone):  # in-zone server names: their glue came with it
                cache.forget(target, dns.rdatatype.A)
                cache.forget(target, dns.rdatatype.AAAA)
        self._referrals.pop(zone, None)
        budget.avoid.clear()

    def _mark(self, rrset: dns.rrset.RRset, verdict: Verdict) -> None:
        """What the chain learnt of a DNSKEY or DS set, for clients asking for it later."""
        self.resolver.cache.mark(
            rrset.name,
            rrset.rdtype,
            verdict.security,
            verdict.ede_reason,
            ttl=verdict.ttl if verdict.security is Security.SECURE else None,
        )

    def _verify_all(
        self,
        rrsets: list[dns.rrset.RRset],
        sigs: list[dns.rrset.RRset],
        signer: dns.name.Name,
        keys: dns.rrset.RRset,
        budget: Budget,
    ) -> Verdict:
        verdicts = [
            verify_rrset(r, _sig_in(r, sigs), signer, keys, self._now(), budget.crypto)
            for r in rrsets
        ]
        return combine(verdicts) if verdicts else bogus("no denial records", Ede.NSEC_MISSING)

    # -- judging a reply ----------------------------------------------------------------

    def judge(
        self, scrubbed: Scrubbed, qname: dns.name.Name, qtype: int, budget: Budget, depth: int
    ) -> Judging:
        """Secure, insecure, bogus or unchecked: the verdict on a classified final reply."""
        owner_zone_name = (
            qname.parent() if qtype == dns.rdatatype.DS and qname != dns.name.root else qname
        )  # a DS record lives in the parent's zone
        if qtype == dns.rdatatype.RRSIG or (
            not self.covers(scrubbed.zone) and not self.covers(owner_zone_name)
        ):
            return Verdict(Security.UNCHECKED)  # signatures are not signed themselves
        verdicts: list[Verdict] = []
        for rrset in scrubbed.answer:
            if rrset.rdtype == dns.rdatatype.CNAME and rrset.name in scrubbed.synthesized:
                continue  # stands or falls with the DNAME that made it
            verdict = yield from self._judge_rrset(scrubbed, rrset, budget, depth)
            _note(
                budget,
                f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}",
                _describe_verdict(verdict, scrubbed.sig(rrset)),
            )
            proofs: tuple[dns.rrset.RRset, ...] = ()
            if verdict.wildcard is not None:
                proofs = tuple(scrubbed.signed_proofs())
            self.resolver.cache.mark(
                rrset.name,
                rrset.rdtype,
                verdict.security,
                verdict.ede_reason,
                ttl=verdict.ttl
                if verdict.security is Security.SECURE
                else (BOGUS_TTL if verdict.bogus else None),
                proofs=proofs,
            )
            verdicts.append(verdict)
        if scrubbed.dname_conflict:
            verdicts.append(bogus(scrubbed.dname_conflict))
        if scrubbed.kind in (ReplyKind.NXDOMAIN, ReplyKind.NODATA):
            verdict = yield from self._judge_denial(scrubbed, qtype, budget, depth)
            _note(
                budget,
                f"{scrubbed.final_name} {scrubbed.kind.value}",
                _describe_verdict(verdict, None),
            )
            verdicts.append(verdict)
        return combine(verdicts)

    def _judge_rrset(
        self, scrubbed: Scrubbed, rrset: dns.rrset.RRset, budget: Budget, depth: int
    ) -> Judging:
        sigs = scrubbed.sig(rrset)
        signer = signer_of(rrset, sigs)
        what = f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}"
        if signer is None:
            zone = self._zone_of(rrset.name, scrubbed.zone, rrset.rdtype)
            entry = yield from self._keys_down_to(rrset.name, zone, budget, depth)
            if entry.security is Security.SECURE:
                return bogus(f"{what} has no RRSIG (zone {zone} is signed)", Ede.RRSIGS_MISSING)
            return entry.verdict()
        if not signer.is_subdomain(scrubbed.zone):
            return bogus(f"{what} is signed by {signer}, outside the server's zone")
        entry = yield from self.keys(signer, budget, depth)
        if entry.security is not Security.SECURE:
            return entry.verdict()
        assert entry.keys is not None
        verdict = verify_rrset(rrset, sigs, signer, entry.keys, self._now(), budget.crypto)
        if verdict.security is Security.SECURE and verdict.wildcard is not None:
            proofs = scrubbed.proofs
            checked = self._verify_all(
                list(proofs),
                scrubbed.proof_sigs(),
                signer,
                entry.keys,
                budget,
            )
            if checked.security is not Security.SECURE:
                return bogus(
                    f"{what} comes from a wildcard, and {checked.reason}", Ede.NSEC_MISSING
                )
            denial = prove_wildcard_answer(
                rrset.name, verdict.wildcard, signer, proofs, budget.hashes
            )
            if denial.status is DenialStatus.BOGUS:
                return bogus(f"{what} from {verdict.wildcard}: {denial.reason}", Ede.NSEC_MISSING)
            if denial.status is DenialStatus.INSECURE:
                return Verdict(Security.INSECURE, denial.reason)
            self.resolver.denials.add_wildcard(
                signer,
                verdict.wildcard,
                rrset,
                sigs,
                scrubbed.signed_proofs(),
                self._now(),
                verdict.ttl if verdict.ttl is not None else rrset.ttl,
            )
        return verdict

    def _judge_denial(self, scrubbed: Scrubbed, qtype: int, budget: Budget, depth: int) -> Judging:
        name = scrubbed.final_name
        records = list(scrubbed.proofs)
        if scrubbed.soa is not None:
            records.append(scrubbed.soa)
        sigs = [s for r in records if (s := scrubbed.sig(r)) is not None]
        signer = next((s for r in records if (s := signer_of(r, scrubbed.sig(r)))), None)
        what = "NXDOMAIN" if scrubbed.kind is ReplyKind.NXDOMAIN else "NODATA"
        if signer is None:
            zone = self._zone_of(name, scrubbed.zone, qtype)
            entry = yield from self._keys_down_to(name, zone, budget, depth)
            if entry.security is Security.SECURE:
                return bogus(
                    f"{what} for {name} carries no signed denial (zone {zone} is signed)",
                    Ede.RRSIGS_MISSING,
                )
            return entry.verdict()
        if not signer.is_subdomain(scrubbed.zone) or not name.is_subdomain(signer):
            return bogus(f"the denial of {name} is signed by {signer}")
        entry = yield from self.keys(signer, budget, depth)
        if entry.security is not Security.SECURE:
            return entry.verdict()
        assert entry.keys is not None
        checked = self._verify_all(records, sigs, signer, entry.keys, budget)
        if checked.security is not Security.SECURE:
            return checked
        if scrubbed.kind is ReplyKind.NXDOMAIN:
            denial = prove_nxdomain(name, signer, scrubbed.proofs, budget.hashes)
        else:
            denial = prove_nodata(name, qtype, signer, scrubbed.proofs, budget.hashes)
        if denial.status is DenialStatus.BOGUS:
            return bogus(f"{what} for {name} is not proven: {denial.reason}", Ede.NSEC_MISSING)
        if denial.status is DenialStatus.INSECURE:
            return Verdict(Security.INSECURE, denial.reason)
        if scrubbed.soa is not None and scrubbed.soa.name == signer:
            self.resolver.denials.add(
                signer,
                scrubbed.signed_proofs(),
                scrubbed.soa,
                scrubbed.sig(scrubbed.soa),
                self._now(),
            )
        return Verdict(Security.SECURE)

    def _keys_down_to(
        self, name: dns.name.Name, zone: dns.name.Name, budget: Budget, depth: int
    ) -> Steps:
        """Keys for unsigned data at `name`: is there an unsigned cut between `zone` and it?

        Walks down label by label asking for DS records (as Unbound does for unsigned
        data in a signed zone); a provably unsigned delegation makes the data insecure.
        """
        entry = yield from self.keys(zone, budget, depth)
        current = zone
        steps = 0
        while entry.security is Security.SECURE and current != name and steps < MAX_UNSIGNED_WALK:
            current = name.split(len(current.labels) + 1)[1]
            entry = yield from self.keys(current, budget, depth + 1)
            steps += 1
        return entry

    def _zone_of(
        self, name: dns.name.Name, server_zone: dns.name.Name, rdtype: int
    ) -> dns.name.Name:
        """The deepest known zone cut holding `name`, at or below the server's zone."""
        if rdtype == dns.rdatatype.DS and name != dns.name.root:
            name = name.parent()  # the parent side holds DS records
        ns = self.resolver.cache.closest_delegation(name)
        if ns is not None and ns.name.is_subdomain(server_zone):
            return ns.name
        return server_zone


def _sig_in(rrset: dns.rrset.RRset, sigs: list[dns.rrset.RRset]) -> dns.rrset.RRset | None:
    for sig in sigs:
        if sig.name == rrset.name and sig.covers == rrset.rdtype:
            return sig
    return None


def _note(budget: Budget, question: str, outcome: str) -> None:
    from poisonproof.resolver.iterator import TraceEvent

    if budget.tracing:
        budget.trace.append(TraceEvent(None, question, outcome, role="validator"))


def _describe_keys(entry: KeyEntry, anchor: dns.name.Name | None) -> str:
    if entry.security is Security.SECURE and entry.keys is not None:
        tags = ", ".join(
            f"{dns.dnssec.key_id(k)}/alg {k.algorithm}"  # type: ignore[attr-defined]
            for k in entry.keys
        )
        via = f"trust anchor {anchor}" if anchor is not None else "its DS"
        return (
            f"secure: keys {tags} (chain from {via}){': ' + entry.reason if entry.reason else ''}"
        )
    return f"{entry.security.value}: {entry.reason}"


def _describe_verdict(verdict: Verdict, sigs: dns.rrset.RRset | None) -> str:
    if verdict.security is Security.SECURE:
        signers = sorted({f"{s.signer} key {s.key_tag}" for s in sigs or ()})  # type: ignore[attr-defined]
        text = "secure" + (f": signed by {', '.join(signers)}" if signers else "")
        if verdict.wildcard is not None:
            text += f"; expanded from {verdict.wildcard}, its proof checked"
        return text
    text = f"{verdict.security.value}" + (f": {verdict.reason}" if verdict.reason else "")
    if verdict.ede is not None and verdict.bogus:
        text += f" (EDE {verdict.ede})"
    return text

"""Finding the records that answer one question inside one zone (RFC 1034 §4.3.2).

Owns: the authoritative algorithm over a `ServedZone`: exact matches, CNAME chains inside
the zone, DNAME substitution, wildcards (RFC 4592), empty non-terminals, NXDOMAIN/NODATA
with the RFC 2308 negative SOA, referrals with in-bailiwick glue, DS at the parent side,
minimal ANY (RFC 8482), and the DNSSEC records (RRSIG, NSEC, NSEC3) when DO is set.
Must never: parse or build wire messages, or decide transport matters (TC, EDNS, RRL).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.name
import dns.node
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset

from poisonproof.auth.zones import ServedZone

MAX_CHAIN = 16
"""CNAME/DNAME steps followed inside one zone before the answer is returned as it stands."""

_WILDCARD = b"*"
_NOT_ANSWERED_FOR_ANY = {dns.rdatatype.RRSIG, dns.rdatatype.NSEC, dns.rdatatype.NSEC3}


class Kind:
    """What an answer is, as RRL and logs classify it."""

    ANSWER = "answer"
    NODATA = "nodata"
    NXDOMAIN = "nxdomain"
    REFERRAL = "referral"


@dataclass
class Sections:
    """The sections of an authoritative reply under construction."""

    rcode: dns.rcode.Rcode = dns.rcode.NOERROR
    authoritative: bool = True
    kind: str = Kind.ANSWER
    kind_name: dns.name.Name = dns.name.root
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    additional: list[dns.rrset.RRset] = field(default_factory=list)

    def add(self, section: list[dns.rrset.RRset], rrset: dns.rrset.RRset | None) -> None:
        if rrset is None:
            return
        for present in section:
            if (
                present.name == rrset.name
                and present.rdtype == rrset.rdtype
                and present.covers == rrset.covers
            ):
                return
        section.append(rrset)


def _rrset(owner: dns.name.Name, rdataset: dns.rdataset.Rdataset) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(owner, rdataset.rdclass, rdataset.rdtype, rdataset.covers)
    rrset.update(rdataset)
    return rrset


def _get(
    node: dns.node.Node | None, rdtype: dns.rdatatype.RdataType, covers: int = 0
) -> dns.rdataset.Rdataset | None:
    if node is None:
        return None
    return node.get_rdataset(dns.rdataclass.IN, rdtype, dns.rdatatype.RdataType.make(covers))


class ZoneLookup:
    """Answers questions from one zone; `dnssec` adds RRSIG/NSEC/NSEC3 (the DO bit)."""

    def __init__(self, served: ServedZone, dnssec: bool) -> None:
        self.served = served
        self.dnssec = dnssec and served.signed

    def _rrset(self, owner: dns.name.Name, rdataset: dns.rdataset.Rdataset) -> dns.rrset.RRset:
        """The RRset for `rdataset` at `owner`, built once per zone for names that exist.

        Building an RRset costs dnspython far more than answering; zones do not change
        after loading, so names in the zone share one immutable-in-practice RRset each.
        Wildcard-expanded owners are built per query and never kept (random names must
        not grow memory).
        """
        if owner not in self.served.names:
            return _rrset(owner, rdataset)
        key = (owner, rdataset.rdtype, rdataset.covers)
        memo = self.served.rrsets
        rrset = memo.get(key)
        if rrset is None:
            rrset = memo[key] = _rrset(owner, rdataset)
        return rrset

    # -- helpers adding records with their signatures ---------------------------------

    def _with_sigs(
        self,
        section: list[dns.rrset.RRset],
        out: Sections,
        node: dns.node.Node | None,
        rdataset: dns.rdataset.Rdataset,
        owner: dns.name.Name,
    ) -> None:
        out.add(section, self._rrset(owner, rdataset))
        if self.dnssec:
            sigs = _get(node, dns.rdatatype.RRSIG, rdataset.rdtype)
            if sigs is not None:
                out.add(section, self._rrset(owner, sigs))

    def _add_owned(
        self, out: Sections, owner: dns.name.Name | None, rdtype: dns.rdatatype.RdataType
    ) -> None:
        """Add the `rdtype` RRset at `owner` (with its RRSIG) to the authority section."""
        if owner is None:
            return
        node = self.served.node(owner)
        rdataset = _get(node, rdtype)
        if rdataset is not None:
            self._with_sigs(out.authority, out, node, rdataset, owner)

    def _negative_soa(self, out: Sections) -> None:
        served = self.served
        memo = served.rrsets
        key = (served.origin, dns.rdatatype.SOA, -1)
        soa = memo.get(key)
        if soa is None:
            rdataset = served.zone.get_rdataset(served.origin, dns.rdatatype.SOA)
            assert rdataset is not None
            soa = memo[key] = _rrset(served.origin, rdataset)
            soa.ttl = served.negative_ttl
        out.add(out.authority, soa)
        if self.dnssec:
            sig_key = (served.origin, dns.rdatatype.RRSIG, -1)
            sig = memo.get(sig_key)
            if sig is None:
                sigs = _get(served.node(served.origin), dns.rdatatype.RRSIG, dns.rdatatype.SOA)
                if sigs is None:
                    return
                sig = memo[sig_key] = _rrset(served.origin, sigs)
                sig.ttl = served.negative_ttl
            out.add(out.authority, sig)

    def _deny_name(self, out: Sections, name: dns.name.Name, closest: dns.name.Name) -> None:
        """Prove that `name` does not exist (NSEC span, or NSEC3 closest-encloser proof)."""
        served = self.served
        if served.nsec_owners:
            self._add_owned(out, served.nsec_covering(name), dns.rdatatype.NSEC)
        elif served.nsec3_hashes:
            self._add_owned(out, served.nsec3_matching(closest), dns.rdatatype.NSEC3)
            next_closer = name.split(len(closest.labels) + 1)[1]
            self._add_owned(out, served.nsec3_covering(next_closer), dns.rdatatype.NSEC3)

    def _deny_type(self, out: Sections, name: dns.name.Name) -> None:
        """Prove that `name` exists without the asked type (its own NSEC/NSEC3)."""
        served = self.served
        if served.nsec_owners:
            owner = name if served.node(name) is not None else served.nsec_covering(name)
            self._add_owned(out, owner, dns.rdatatype.NSEC)
        elif served.nsec3_hashes:
            owner = served.nsec3_matching(name) or served.nsec3_covering(name)
            self._add_owned(out, owner, dns.rdatatype.NSEC3)

    # -- the algorithm ----------------------------------------------------------------

    def answer(self, qname: dns.name.Name, qtype: dns.rdatatype.RdataType) -> Sections:
        out = Sections()
        name = qname
        seen: set[dns.name.Name] = set()
        for step in range(MAX_CHAIN):
            target = self._step(out, name, qtype, first=step == 0)
            if target is None or target in seen or not target.is_subdomain(self.served.origin):
                break
            seen.add(name)
            name = target
        return out

    def _step(
        self,
        out: Sections,
        name: dns.name.Name,
        qtype: dns.rdatatype.RdataType,
        first: bool,
    ) -> dns.name.Name | None:
        """Answer `name` into `out`; return the name to continue with after a CNAME/DNAME."""
        served = self.served
        origin_depth = len(served.origin.labels)
        closest = served.origin
        for depth in range(origin_depth, len(name.labels) + 1):
            ancestor = name.split(depth)[1] if depth < len(name.labels) else name
            if ancestor not in served.names:
                break
            closest = ancestor
            if ancestor in served.cuts and not (qtype == dns.rdatatype.DS and ancestor == name):
                self._referral(out, ancestor, first)
                return None
            if ancestor != name:
                node = served.node(ancestor)
                dname = _get(node, dns.rdatatype.DNAME)
                if dname is not None:
                    return self._dname(out, name, ancestor, node, dname)
        if closest == name:
            return self._existing(out, name, qtype)
        return self._missing(out, name, qtype, closest)

    def _existing(
        self, out: Sections, name: dns.name.Name, qtype: dns.rdatatype.RdataType
    ) -> dns.name.Name | None:
        node = self.served.node(name)
        return self._from_node(out, name, node, qtype, wildcard=None)

    def _from_node(
        self,
        out: Sections,
        name: dns.name.Name,
        node: dns.node.Node | None,
        qtype: dns.rdatatype.RdataType,
        wildcard: dns.name.Name | None,
    ) -> dns.name.Name | None:
        """Answer from `node` (the exact node, or a wildcard node expanded to `name`)."""
        cname = _get(node, dns.rdatatype.CNAME)
        if cname is not None and qtype not in (dns.rdatatype.CNAME, dns.rdatatype.ANY):
            self._with_sigs(out.answer, out, node, cname, name)
            self._answered(out, name)
            return cname[0].target  # type: ignore[attr-defined,no-any-return]
        rdataset: dns.rdataset.Rdataset | None = None
        if qtype == dns.rdatatype.ANY and node is not None:
            # RFC 8482: a minimal answer, one RRset, not the whole node.
            candidates = [r for r in node.rdatasets if r.rdtype not in _NOT_ANSWERED_FOR_ANY]
            rdataset = min(candidates, key=lambda r: r.rdtype) if candidates else None
        else:
            rdataset = _get(node, qtype)
        if rdataset is not None:
            self._with_sigs(out.answer, out, node, rdataset, name)
            self._answered(out, name)
            return None
        out.kind, out.kind_name = Kind.NODATA, name
        self._negative_soa(out)
        if self.dnssec:
            if wildcard is None:
                self._deny_type(out, name)
            else:
                self._deny_name(out, name, wildcard.parent())
                self._deny_type(out, wildcard)
        return None

    def _answered(self, out: Sections, name: dns.name.Name) -> None:
        if out.kind != Kind.NXDOMAIN:
            out.kind, out.kind_name = Kind.ANSWER, name

    def _missing(
        self,
        out: Sections,
        name: dns.name.Name,
        qtype: dns.rdatatype.RdataType,
        closest: dns.name.Name,
    ) -> dns.name.Name | None:
        wildcard = dns.name.Name((_WILDCARD, *closest.labels))
        wild_node = self.served.node(wildcard)
        if wild_node is not None:
            before = len(out.answer)
            target = self._from_node(out, name, wild_node, qtype, wildcard)
            if self.dnssec and len(out.answer) > before:
                self._deny_name(out, name, closest)  # the exact name does not exist
            return target
        out.rcode = dns.rcode.NXDOMAIN
        out.kind, out.kind_name = Kind.NXDOMAIN, self.served.origin
        self._negative_soa(out)
        if self.dnssec:
            self._deny_name(out, name, closest)
            served = self.served
            if served.nsec_owners:
                self._add_owned(out, served.nsec_covering(wildcard), dns.rdatatype.NSEC)
            elif served.nsec3_hashes:
                self._add_owned(out, served.nsec3_covering(wildcard), dns.rdatatype.NSEC3)
        return None

    def _dname(
        self,
        out: Sections,
        name: dns.name.Name,
        owner: dns.name.Name,
        node: dns.node.Node | None,
        dname: dns.rdataset.Rdataset,
    ) -> dns.name.Name | None:
        """RFC 6672: the DNAME, and a CNAME synthesized from it for `name`."""
        self._with_sigs(out.answer, out, node, dname, owner)
        target_zone: dns.name.Name = dname[0].target  # type: ignore[attr-defined]
        try:
            target = name.relativize(owner).derelativize(target_zone)
        except dns.name.NameTooLong:
            out.rcode = dns.rcode.YXDOMAIN
            return None
        synthesized = dns.rrset.from_rdata(
            name,
            dname.ttl,
            dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.CNAME, target.to_text()),
        )
        out.add(out.answer, synthesized)
        self._answered(out, name)
        return target

    def _referral(self, out: Sections, cut: dns.name.Name, first: bool) -> None:
        served = self.served
        node = served.node(cut)
        ns = _get(node, dns.rdatatype.NS)
        assert ns is not None
        if first:
            out.authoritative = False
            out.kind, out.kind_name = Kind.REFERRAL, cut
        out.add(out.authority, self._rrset(cut, ns))
        if self.dnssec:
            ds = _get(node, dns.rdatatype.DS)
            if ds is not None:
                self._with_sigs(out.authority, out, node, ds, cut)
            else:
                self._deny_type(out, cut)
        for rdata in ns:
            target: dns.name.Name = rdata.target  # type: ignore[attr-defined]
            if not target.is_subdomain(cut):
                continue  # glue only for names inside the delegated zone
            glue_node = served.node(target)
            for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                glue = _get(glue_node, rdtype)
                if glue is not None:
                    out.add(out.additional, self._rrset(target, glue))

"""Classifying an upstream reply and scrubbing what may not be believed.

Owns: deciding what a reply is (answer, CNAME/DNAME step, NXDOMAIN, NODATA, referral,
lame, error) for the question asked of a server authoritative for `zone`, and which of its
RRsets may enter the cache at which rank. With `Defenses.bailiwick` on it applies the
rules that stop forged extra records (RFC 2181 §5.4.1, RFC 5452 §6): records outside the
server's zone are dropped; a referral must point below the server's zone and above the
name asked; only the answer chain of the question is kept from the answer section;
glue is kept only for the name servers of the referral; authority and additional data
of a positive answer are not needed and not cached. With it off (the 2008 preset) every
record is believed, as old resolvers did.
Must never: do I/O, touch the cache or check IDs and ports (that is `outgoing`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from poisonproof.resolver.cache import Rank

MAX_CHAIN_IN_REPLY = 12


class ReplyKind(enum.Enum):
    ANSWER = "answer"
    CNAME = "cname"
    """The answer chain ends in a name this reply does not answer: restart with it."""
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    REFERRAL = "referral"
    LAME = "lame"
    """Not an answer from a server authoritative for the zone (upward referral, junk)."""
    ERROR = "error"
    """SERVFAIL, REFUSED, FORMERR, NOTIMP, ..."""


@dataclass
class Scrubbed:
    kind: ReplyKind
    rcode: int
    authoritative: bool
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    """The chain from the question name, in order (CNAMEs/DNAMEs then the final RRset)."""
    final_name: dns.name.Name = dns.name.root
    """The name the chain ends at (the question name when there is no CNAME)."""
    soa: dns.rrset.RRset | None = None
    child_ns: dns.rrset.RRset | None = None
    """The zone's own NS set from the authority section of an authoritative answer: kept
    apart, used only when every server the parent named has failed (never overrides)."""
    referral_zone: dns.name.Name | None = None
    ns: dns.rrset.RRset | None = None
    glue: list[dns.rrset.RRset] = field(default_factory=list)
    to_cache: list[tuple[dns.rrset.RRset, Rank]] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)
    """(record text, reason) for every RRset the scrubber refused."""
    reason: str = ""
    zone: dns.name.Name = dns.name.root
    """The zone of the server that answered (whose keys should have signed it)."""
    sigs: dict[tuple[dns.name.Name, int], dns.rrset.RRset] = field(default_factory=dict)
    """RRSIGs of the reply by (owner, type covered): kept for validation, never cached alone."""
    proofs: list[dns.rrset.RRset] = field(default_factory=list)
    """NSEC/NSEC3 records from the authority section inside the server's zone."""
    ds: dns.rrset.RRset | None = None
    """The DS set beside a referral (the parent's word on the child's keys)."""
    server: tuple[str, int] | None = None
    """Who sent it (a server whose data fails validation is avoided on the retry)."""
    synthesized: set[dns.name.Name] = field(default_factory=set)
    """Owners of the CNAMEs we synthesized from DNAMEs (unsigned: the DNAME is judged)."""
    dname_conflict: str = ""
    """The server's own CNAME for a DNAME step disagrees with the substitution (a forgery
    sign: the validator calls such a reply bogus; without validation it is ignored)."""

    def sig(self, rrset: dns.rrset.RRset) -> dns.rrset.RRset | None:
        return self.sigs.get((rrset.name, int(rrset.rdtype)))

    def proof_sigs(self) -> list[dns.rrset.RRset]:
        """The RRSIGs of the NSEC/NSEC3 proofs that have one."""
        return [s for p in self.proofs if (s := self.sig(p)) is not None]

    def signed_proofs(self) -> list[dns.rrset.RRset]:
        """Each NSEC/NSEC3 proof followed by its RRSIG (when it has one)."""
        return [r for p in self.proofs for r in (p, self.sig(p)) if r is not None]

    def drop(self, rrset: dns.rrset.RRset, reason: str) -> None:
        self.dropped.append((f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}", reason))


def _in_bailiwick(name: dns.name.Name, zone: dns.name.Name) -> bool:
    return name.is_subdomain(zone)


_T = dns.rdatatype.RdataType
_LOWERED: dict[int, tuple[str, ...]] = {
    _T.A: (),
    _T.AAAA: (),
    _T.TXT: (),
    _T.DS: (),
    _T.DNSKEY: (),
    _T.NSEC: (),  # its next name keeps its case (RFC 6840 §5.1)
    _T.NSEC3: (),
    _T.NSEC3PARAM: (),
    _T.DNAME: ("target",),
    _T.CAA: (),
    _T.SSHFP: (),
    _T.TLSA: (),
    _T.NS: ("target",),
    _T.CNAME: ("target",),
    _T.PTR: ("target",),
    _T.MX: ("exchange",),
    _T.SRV: ("target",),
    _T.SOA: ("mname", "rname"),
    _T.RRSIG: ("signer",),
}
"""For the types replies carry most, the rdata attributes (domain names) that canonical
form lowercases: exactly those `Rdata.to_digestable` lowercases (a test holds the two
equal). A type missing here takes the general path, a wire round trip."""


def _lowercase(name: dns.name.Name) -> bool:
    return all(label == label.lower() for label in name.labels)


def _canonical_rdata(rdata: dns.rdata.Rdata, fields: tuple[str, ...]) -> dns.rdata.Rdata | None:
    """`rdata` in canonical form without a wire round trip: itself when the names of
    `fields` are lowercase already, else a copy with them lowercased; None when an
    attribute is not the domain name expected (generic rdata): the caller goes the long way.
    """
    if not fields:
        return rdata
    lowered: dict[str, dns.name.Name] = {}
    for attribute in fields:
        name = getattr(rdata, attribute, None)
        if not isinstance(name, dns.name.Name):
            return None
        if not _lowercase(name):
            lowered[attribute] = name.canonicalize()
    if not lowered:
        return rdata
    state = rdata.__getstate__()  # the pickle protocol: every slot, then the new names
    state.update(lowered)
    copy = type(rdata).__new__(type(rdata))
    copy.__setstate__(state)
    return copy


def canonical(rrset: dns.rrset.RRset) -> dns.rrset.RRset:
    """`rrset` with its owner and the names inside its rdata lowercased (RFC 4034 §6.2).

    0x20 randomization puts random case into replies (and, through name compression,
    into rdata names); the cache keeps and serves one canonical spelling. Always a new
    RRset (the reply's own is never shared). For the types of `_LOWERED` no wire round
    trip: the (immutable) rdata objects are kept, or copied with their names lowercased;
    when none changes the set is copied without re-hashing its rdata.
    """
    owner = rrset.name if _lowercase(rrset.name) else rrset.name.canonicalize()
    fields = _LOWERED.get(rrset.rdtype)
    if fields is not None:
        rdatas = [_canonical_rdata(rdata, fields) for rdata in rrset]
        if None not in rdatas:
            out = rrset.copy()  # a shallow copy (same class, type, covers, TTL): no re-hash
            out.name = owner
            if any(new is not old for new, old in zip(rdatas, rrset, strict=True)):
                # rdata compare in canonical form, so the set's members stay distinct and
                # in order: hashed once each, where `add` would hash twice
                out.items = dict.fromkeys(rdatas)
            return out
    out = dns.rrset.RRset(owner, rrset.rdclass, rrset.rdtype, rrset.covers)
    for rdata in rrset:
        wire = rdata.to_digestable()
        out.add(dns.rdata.from_wire(rrset.rdclass, rrset.rdtype, wire, 0, len(wire)), rrset.ttl)
    return out


_AA = int(dns.flags.AA)
_EXTENDED_RCODE = 0xFF000000
"""The upper eight bits of an extended rcode, in the EDNS flags (RFC 6891 §6.1.3)."""


def _canonical_message(reply: dns.message.Message) -> dns.message.Message:
    copy = dns.message.Message(id=reply.id)
    copy.flags = reply.flags
    copy.question = reply.question
    copy.answer = [canonical(r) for r in reply.answer]
    copy.authority = [canonical(r) for r in reply.authority]
    copy.additional = [canonical(r) for r in reply.additional]
    copy.ednsflags = reply.ednsflags & _EXTENDED_RCODE  # with flags: what set_rcode() sets
    return copy


_PROOF_TYPES = (dns.rdatatype.NSEC, dns.rdatatype.NSEC3)


def _take_dnssec(
    reply: dns.message.Message, out: Scrubbed, zone: dns.name.Name, qtype: int
) -> None:
    """Move RRSIGs, denial proofs and a referral's DS out of the sections, into `out`.

    Asked for RRSIG records themselves, the answer section's RRSIGs are the data.
    """
    sections = (reply.answer, reply.authority, reply.additional)
    if qtype == dns.rdatatype.RRSIG:
        sections = sections[1:]
    for section in sections:
        for rrset in [r for r in section if r.rdtype == dns.rdatatype.RRSIG]:
            section.remove(rrset)
            key = (rrset.name, int(rrset.covers))
            if key in out.sigs:
                out.sigs[key] = out.sigs[key].union(rrset)
            else:
                out.sigs[key] = rrset
    for rrset in list(reply.authority):
        if rrset.rdtype in _PROOF_TYPES:
            reply.authority.remove(rrset)
            if _in_bailiwick(rrset.name, zone):
                out.proofs.append(rrset)
            else:
                out.drop(rrset, f"denial proof outside {zone}")


def scrub(
    reply: dns.message.Message,
    qname: dns.name.Name,
    qtype: int,
    zone: dns.name.Name,
    *,
    bailiwick: bool = True,
) -> Scrubbed:
    """Classify `reply` to the question (qname, qtype) asked of a server for `zone`."""
    rcode = reply.rcode()
    reply = _canonical_message(reply)
    qname = qname.canonicalize()
    aa = bool(int(reply.flags) & _AA)
    out = Scrubbed(ReplyKind.ERROR, rcode, aa, final_name=qname, zone=zone)
    _take_dnssec(reply, out, zone, qtype)
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        out.reason = f"rcode {dns.rcode.to_text(rcode)}"
        return out
    answer_rank = Rank.ANSWER_AUTH if aa else Rank.ANSWER_NONAUTH
    authority_rank = Rank.AUTHORITY_AUTH if aa else Rank.AUTHORITY_NONAUTH

    # -- the answer chain --------------------------------------------------------------
    used: set[int] = set()
    current = qname
    final: dns.rrset.RRset | None = None
    for _ in range(MAX_CHAIN_IN_REPLY):
        step = _find_step(reply.answer, current, qtype, used)
        if step is None:
            break
        index, rrset = step
        if bailiwick and not _in_bailiwick(rrset.name, zone):
            break  # the rest of the chain must come from a server authoritative for it
        if index not in used:
            out.answer.append(rrset)
        used.add(index)
        if rrset.rdtype == qtype or qtype == dns.rdatatype.ANY:
            final = rrset
            break
        if rrset.rdtype == dns.rdatatype.CNAME:
            current = rrset[0].target  # type: ignore[attr-defined]
        elif rrset.rdtype == dns.rdatatype.DNAME:
            rewritten = current
            try:
                current = rewritten.relativize(rrset.name).derelativize(rrset[0].target)  # type: ignore[attr-defined]
            except dns.name.NameTooLong:
                out.reason = "DNAME substitution too long"
                return out
            synthesized = dns.rrset.from_text(
                rewritten, rrset.ttl, "IN", "CNAME", current.to_text()
            )
            out.answer.append(synthesized)
            out.synthesized.add(rewritten)
            if qtype == dns.rdatatype.CNAME:
                final = synthesized  # asked for the CNAME: the substitution is the answer
                break
            conflict = _skip_cname_for(reply.answer, synthesized.name, current, used)
            if conflict:
                out.dname_conflict = conflict
        else:
            final = rrset
            break
    out.final_name = current
    for index, rrset in enumerate(reply.answer):
        if index in used:
            out.to_cache.append((rrset, answer_rank))
        elif bailiwick:
            out.drop(rrset, "answer-section record not on the question's answer chain")
        else:
            out.to_cache.append((rrset, answer_rank))

    # -- authority: SOA, NS ---------------------------------------------------------------
    soa = next((r for r in reply.authority if r.rdtype == dns.rdatatype.SOA), None)
    ns = next((r for r in reply.authority if r.rdtype == dns.rdatatype.NS), None)
    if final is not None:
        out.kind = ReplyKind.ANSWER
        keep: tuple[dns.rrset.RRset, ...] = ()
        if final.rdtype == dns.rdatatype.NS:
            keep = _glue_for(out, reply, final, zone, bailiwick)
        if bailiwick and aa and ns is not None and ns.name == zone:
            out.child_ns = ns
            keep = (*keep, ns)
        _leftovers(out, reply, bailiwick, authority_rank, keep=keep)
        return out
    if bailiwick and out.answer and not _in_bailiwick(current, zone):
        # The chain left the server's zone: its rcode and SOA cannot deny the target (RFC
        # 6604 §3), or it could make us deny any name; restart at the target instead.
        out.kind = ReplyKind.CNAME
        _leftovers(out, reply, bailiwick, authority_rank, keep=())
        return out
    if rcode == dns.rcode.NXDOMAIN:
        return _negative(
            out, reply, ReplyKind.NXDOMAIN, soa, current, zone, bailiwick, authority_rank
        )
    if soa is not None:
        return _negative(
            out, reply, ReplyKind.NODATA, soa, current, zone, bailiwick, authority_rank
        )
    if ns is not None and (_points_down(ns.name, zone, current) or not bailiwick):
        return _referral(out, reply, ns, current, zone, bailiwick, authority_rank)
    if out.answer:  # a chain whose end this server does not answer: restart there
        out.kind = ReplyKind.CNAME
        _leftovers(out, reply, bailiwick, authority_rank, keep=())
        return out
    if (aa or reply.answer) and ns is None:
        # authoritative silence, or answer records none of which answer the question
        return _negative(
            out, reply, ReplyKind.NODATA, soa, current, zone, bailiwick, authority_rank
        )
    if aa and ns is not None and ns.name == zone:
        # NODATA with the zone's own NS instead of its SOA (some servers answer so)
        out.kind = ReplyKind.NODATA
        _leftovers(out, reply, bailiwick, authority_rank, keep=())
        return out
    if ns is not None:
        return _referral(out, reply, ns, current, zone, bailiwick, authority_rank)
    out.kind = ReplyKind.LAME
    out.reason = "no answer, no SOA and no referral"
    return out


def _glue_for(
    out: Scrubbed,
    reply: dns.message.Message,
    ns: dns.rrset.RRset,
    zone: dns.name.Name,
    bailiwick: bool,
) -> tuple[dns.rrset.RRset, ...]:
    """Addresses of the name servers in an NS answer (priming): kept as glue only."""
    targets = {r.target for r in ns}  # type: ignore[attr-defined]
    kept = []
    for rrset in reply.additional:
        if (
            rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
            and rrset.name in targets
            and (not bailiwick or _in_bailiwick(rrset.name, zone))
        ):
            out.glue.append(rrset)
            out.to_cache.append((rrset, Rank.GLUE))
            kept.append(rrset)
    return tuple(kept)


def _find_step(
    answer: list[dns.rrset.RRset], name: dns.name.Name, qtype: int, used: set[int]
) -> tuple[int, dns.rrset.RRset] | None:
    # a name below a DNAME owns nothing (RFC 6672 §2.4): a record the server put there is
    # its own synthesis (or a forgery), replaced by ours; one DNAME may rewrite many steps
    for index, rrset in enumerate(answer):
        if (
            rrset.rdtype == dns.rdatatype.DNAME
            and rrset.rdclass == dns.rdataclass.IN
            and name.is_subdomain(rrset.name)
            and name != rrset.name
        ):
            return index, rrset
    for index, rrset in enumerate(answer):
        if index in used or rrset.rdclass != dns.rdataclass.IN:
            continue
        if rrset.name == name and (rrset.rdtype == qtype or qtype == dns.rdatatype.ANY):
            return index, rrset
    for index, rrset in enumerate(answer):
        if index not in used and rrset.name == name and rrset.rdtype == dns.rdatatype.CNAME:
            return index, rrset
    return None


def _skip_cname_for(
    answer: list[dns.rrset.RRset], name: dns.name.Name, target: dns.name.Name, used: set[int]
) -> str:
    """The server's own synthesized CNAME is replaced by ours; mark it consumed, and say
    if it pointed elsewhere than the substitution does."""
    conflict = ""
    for index, rrset in enumerate(answer):
        if rrset.name == name and rrset.rdtype == dns.rdatatype.CNAME:
            used.add(index)
            got = rrset[0].target  # type: ignore[attr-defined]
            if got != target:
                conflict = (
                    f"the CNAME {name} -> {got} contradicts the DNAME substitution ({target})"
                )
    return conflict


def _leftovers(
    out: Scrubbed,
    reply: dns.message.Message,
    bailiwick: bool,
    authority_rank: Rank,
    keep: tuple[dns.rrset.RRset, ...],
) -> None:
    """Authority and additional records not otherwise used: dropped, or (2008) believed."""
    for rrset in reply.authority:
        if any(rrset is k for k in keep):
            continue
        if bailiwick:
            out.drop(rrset, "authority-section record not needed for this reply")
        else:
            out.to_cache.append((rrset, authority_rank))
    for rrset in reply.additional:
        if any(rrset is k for k in keep):
            continue
        if bailiwick:
            out.drop(rrset, "additional-section record not needed for this reply")
        else:
            out.to_cache.append((rrset, Rank.GLUE))


def _negative(
    out: Scrubbed,
    reply: dns.message.Message,
    kind: ReplyKind,
    soa: dns.rrset.RRset | None,
    name: dns.name.Name,
    zone: dns.name.Name,
    bailiwick: bool,
    authority_rank: Rank,
) -> Scrubbed:
    if (
        soa is not None
        and bailiwick
        and not (_in_bailiwick(soa.name, zone) and name.is_subdomain(soa.name))
    ):
        out.drop(soa, f"SOA of {soa.name} cannot deny {name} from a server for {zone}")
        soa = None
        if kind is ReplyKind.NXDOMAIN or not out.answer:
            out.kind = ReplyKind.LAME
            out.reason = "negative answer with a foreign SOA"
            _leftovers(out, reply, bailiwick, authority_rank, keep=())
            return out
    out.kind = kind
    out.soa = soa
    _leftovers(out, reply, bailiwick, authority_rank, keep=(soa,) if soa is not None else ())
    return out


def _points_down(cut: dns.name.Name, zone: dns.name.Name, name: dns.name.Name) -> bool:
    """A referral must go below the server's zone and towards the name asked."""
    return cut != zone and cut.is_subdomain(zone) and name.is_subdomain(cut)


def _referral(
    out: Scrubbed,
    reply: dns.message.Message,
    ns: dns.rrset.RRset,
    name: dns.name.Name,
    zone: dns.name.Name,
    bailiwick: bool,
    authority_rank: Rank,
) -> Scrubbed:
    cut = ns.name
    if bailiwick and not _points_down(cut, zone, name):
        out.drop(ns, f"referral to {cut} is not below {zone} and above {name}")
        out.kind = ReplyKind.LAME
        out.reason = f"referral to {cut} from a server for {zone}"
        _leftovers(out, reply, bailiwick, authority_rank, keep=())
        return out
    # A chain that left the server's authority ends in a referral: restart at its target
    # (the delegation is cached, so the restart goes straight to the new zone's servers).
    out.kind = ReplyKind.CNAME if out.answer else ReplyKind.REFERRAL
    out.referral_zone = cut
    out.ns = ns
    out.to_cache.append((ns, Rank.AUTHORITY_NONAUTH))
    targets = {r.target for r in ns}  # type: ignore[attr-defined]
    for rrset in reply.authority:
        if rrset is ns:
            continue
        if rrset.rdtype == dns.rdatatype.DS and rrset.name == cut:
            out.ds = rrset  # checked (or not) by the validator; never cached from here
            continue
        if bailiwick:
            out.drop(rrset, "authority-section record beside a referral")
        else:
            out.to_cache.append((rrset, authority_rank))
    for rrset in reply.additional:
        is_glue = rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA) and rrset.name in targets
        if bailiwick and not is_glue:
            out.drop(rrset, "additional record that is not glue for the referral")
        elif bailiwick and not _in_bailiwick(rrset.name, zone):
            out.drop(rrset, f"glue for {rrset.name} is outside {zone}")
        else:
            out.glue.append(rrset)
            out.to_cache.append((rrset, Rank.GLUE))
    return out

"""DNSSEC signature checks: one RRset against a zone's keys, and a DNSKEY set against its DS.

Owns: the security states (secure, insecure, bogus, unchecked), choosing which RRSIGs and
which DNSKEYs may be tried (signer, type covered, key tag, algorithm, zone-key flag,
protocol), the validity period, the TTL a validated RRset may keep (RFC 4035 §5.3.3),
matching DNSKEYs to DS records (RFC 4509 digest preference), wildcard detection from the
RRSIG labels field, the Extended DNS Error for each failure (RFC 8914), and the cap on
signature checks per client query (KeyTrap, CVE-2023-50387).
Must never: fetch anything, read the clock, or prove denials (`resolver/denial.py`); the
cryptography itself is dnspython's (`dns.dnssec.validate_rrsig`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

import dns.dnssec
import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.DNSKEY import DNSKEY
from dns.rdtypes.ANY.DS import DS
from dns.rdtypes.ANY.RRSIG import RRSIG

ZONE_KEY_FLAG = 0x0100
DNSSEC_PROTOCOL = 3
DIGEST_PREFERENCE = {4: 3, 2: 2, 1: 1}  # SHA-384 > SHA-256 > SHA-1; others unsupported
VALIDATION_POLICY = dns.dnssec.SimpleDeny(
    set(), {dns.dnssec.Algorithm.RSAMD5}, set(), {dns.dnssec.DSDigest.NULL}
)
"""What may be validated: everything dnspython implements but RSAMD5 (RFC 8624 §3.1:
DSA validation MAY be kept for old zones; Unbound keeps it, so do we)."""
MAX_TRIES_PER_RRSET = 4
"""Signatures tried for one RRset (key-tag collisions are legal but rare)."""


class Security(enum.Enum):
    UNCHECKED = "unchecked"
    """No trust anchor covers it, or validation is off: never AD, never bogus."""
    INSECURE = "insecure"
    """Provably unsigned (no DS at a signed parent, opt-out, unsupported algorithm)."""
    SECURE = "secure"
    BOGUS = "bogus"


class Ede:
    """RFC 8914 Extended DNS Error codes of DNSSEC failures."""

    UNSUPPORTED_DNSKEY_ALGORITHM = 1
    UNSUPPORTED_DS_DIGEST = 2
    DNSSEC_BOGUS = 6
    SIGNATURE_EXPIRED = 7
    SIGNATURE_NOT_YET_VALID = 8
    DNSKEY_MISSING = 9
    RRSIGS_MISSING = 10
    NO_ZONE_KEY_BIT = 11
    NSEC_MISSING = 12


@dataclass(frozen=True)
class Verdict:
    security: Security
    reason: str = ""
    ede: int | None = None
    ttl: int | None = None
    """For a secure RRset: the TTL it may be cached for (capped by the RRSIG)."""
    wildcard: dns.name.Name | None = None
    """For a secure RRset expanded from a wildcard: the wildcard's owner name."""
    from_keys: bool = False
    """The verdict is the zone's keys' (not this data's): asking another server for the
    same data cannot help."""

    @property
    def bogus(self) -> bool:
        return self.security is Security.BOGUS

    @property
    def ede_reason(self) -> tuple[int, str] | None:
        """(Extended DNS Error code, text) of a bogus verdict; None otherwise."""
        if not self.bogus:
            return None
        return (self.ede if self.ede is not None else Ede.DNSSEC_BOGUS, self.reason)


def secure(ttl: int | None = None, wildcard: dns.name.Name | None = None) -> Verdict:
    return Verdict(Security.SECURE, ttl=ttl, wildcard=wildcard)


def bogus(reason: str, ede: int = Ede.DNSSEC_BOGUS) -> Verdict:
    return Verdict(Security.BOGUS, reason, ede)


@dataclass
class CryptoBudget:
    """Signature checks left for one client query (KeyTrap: many keys x many signatures)."""

    remaining: int = 32

    def take(self) -> bool:
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True


def supported_algorithm(algorithm: int) -> bool:
    try:
        alg = dns.dnssec.Algorithm.make(algorithm)
    except ValueError:
        return False
    if alg in (dns.dnssec.Algorithm.PRIVATEDNS, dns.dnssec.Algorithm.PRIVATEOID):
        return False
    try:
        dns.dnssec.get_algorithm_cls(alg)
    except (dns.dnssec.UnsupportedAlgorithm, dns.exception.DNSException, KeyError):
        return False
    return bool(
        VALIDATION_POLICY.ok_to_validate(
            DNSKEY(dns.rdataclass.IN, dns.rdatatype.DNSKEY, ZONE_KEY_FLAG, 3, alg, b"\x00")
        )
    )


def owner_labels(name: dns.name.Name) -> int:
    """The RRSIG labels count of an owner name (root and a leading `*` not counted)."""
    count = len(name.labels) - 1
    if name.labels and name.labels[0] == b"*":
        count -= 1
    return count


def signatures_for(
    rrset: dns.rrset.RRset, sigs: dns.rrset.RRset | None, signer: dns.name.Name | None = None
) -> list[RRSIG]:
    if sigs is None:
        return []
    return [
        s
        for s in sigs
        if s.type_covered == rrset.rdtype and (signer is None or s.signer == signer)  # type: ignore[attr-defined]
    ]


def signer_of(rrset: dns.rrset.RRset, sigs: dns.rrset.RRset | None) -> dns.name.Name | None:
    """The zone that signed `rrset` (the first fitting RRSIG's signer), or None."""
    for sig in signatures_for(rrset, sigs):
        if rrset.name.is_subdomain(sig.signer):
            return sig.signer.canonicalize()
    return None


def verify_rrset(
    rrset: dns.rrset.RRset,
    sigs: dns.rrset.RRset | None,
    zone: dns.name.Name,
    keys: dns.rrset.RRset,
    now: float,
    budget: CryptoBudget,
) -> Verdict:
    """Is `rrset` signed by one of `keys` (the validated DNSKEY set of `zone`)?"""
    what = f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}"
    candidates = signatures_for(rrset, sigs, zone)
    if not candidates:
        others = signatures_for(rrset, sigs)
        if others:
            return bogus(f"{what} is signed by {others[0].signer}, not by its zone {zone}")
        return bogus(f"{what} has no RRSIG (zone {zone} is signed)", Ede.RRSIGS_MISSING)
    failures: list[tuple[str, int]] = []
    tries = 0
    unsupported = 0
    for sig in candidates:
        if sig.labels > owner_labels(rrset.name):
            failures.append((f"RRSIG labels {sig.labels} exceed the owner's", Ede.DNSSEC_BOGUS))
            continue
        if not supported_algorithm(sig.algorithm):
            unsupported += 1
            continue
        matching = [
            k
            for k in keys
            if k.algorithm == sig.algorithm  # type: ignore[attr-defined]
            and k.protocol == DNSSEC_PROTOCOL  # type: ignore[attr-defined]
            and k.flags & ZONE_KEY_FLAG  # type: ignore[attr-defined]
            and dns.dnssec.key_id(k) == sig.key_tag  # type: ignore[arg-type]
        ]
        if not matching:
            failures.append(
                (
                    f"no DNSKEY of {zone} with tag {sig.key_tag}, algorithm {sig.algorithm}",
                    Ede.DNSKEY_MISSING,
                )
            )
            continue
        if now > sig.expiration:
            failures.append((f"RRSIG over {what} expired", Ede.SIGNATURE_EXPIRED))
            continue
        if now < sig.inception:
            failures.append((f"RRSIG over {what} is not yet valid", Ede.SIGNATURE_NOT_YET_VALID))
            continue
        if tries >= MAX_TRIES_PER_RRSET or not budget.take():
            return bogus(f"{what}: signature check limit reached (KeyTrap guard)")
        tries += 1
        key_set = dns.rrset.RRset(zone, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
        for key in matching:
            key_set.add(key)
        single = dns.rrset.RRset(rrset.name, dns.rdataclass.IN, dns.rdatatype.RRSIG, rrset.rdtype)
        single.add(sig)
        try:
            dns.dnssec.validate(rrset, single, {zone: key_set}, now=now, policy=VALIDATION_POLICY)
        except dns.dnssec.ValidationFailure as error:
            failures.append((f"RRSIG over {what} does not verify ({error})", Ede.DNSSEC_BOGUS))
            continue
        ttl = min(rrset.ttl, sig.original_ttl, max(0, int(sig.expiration - now)))
        wildcard = None
        if sig.labels < owner_labels(rrset.name):
            wildcard = dns.name.Name((b"*", *rrset.name.canonicalize().labels[-(sig.labels + 1) :]))
        return secure(ttl, wildcard)
    if unsupported and not failures:
        return Verdict(
            Security.INSECURE,
            f"{what} is signed only with algorithms this resolver does not support",
            Ede.UNSUPPORTED_DNSKEY_ALGORITHM,
        )
    reason, ede = failures[0]
    return bogus(reason, ede)


def usable_ds(ds_set: Iterable[DS]) -> list[DS]:
    """The DS records to use: supported algorithm and digest, strongest digest only."""
    usable = [
        ds
        for ds in ds_set
        if ds.digest_type in DIGEST_PREFERENCE and supported_algorithm(ds.algorithm)
    ]
    if not usable:
        return []
    best = max(DIGEST_PREFERENCE[ds.digest_type] for ds in usable)
    return [ds for ds in usable if DIGEST_PREFERENCE[ds.digest_type] == best]


def verify_dnskeys(
    dnskeys: dns.rrset.RRset,
    sigs: dns.rrset.RRset | None,
    zone: dns.name.Name,
    now: float,
    budget: CryptoBudget,
    *,
    ds_set: dns.rrset.RRset | None = None,
    anchor_keys: dns.rrset.RRset | None = None,
) -> Verdict:
    """Does a key the parent's DS (or an anchor DNSKEY) vouches for sign this DNSKEY set?"""
    trusted = dns.rrset.RRset(zone, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
    if anchor_keys is not None:
        for key in dnskeys:
            if key in anchor_keys:
                trusted.add(key)
    if ds_set is not None:
        usable = usable_ds(ds_set)  # type: ignore[arg-type]
        if not usable and anchor_keys is None:
            return Verdict(
                Security.INSECURE,
                f"no DS of {zone} has an algorithm and digest this resolver supports",
                Ede.UNSUPPORTED_DS_DIGEST,
            )
        for ds in usable:
            for key in dnskeys:
                if (
                    key.algorithm != ds.algorithm  # type: ignore[attr-defined]
                    or dns.dnssec.key_id(key) != ds.key_tag  # type: ignore[arg-type]
                    or key.protocol != DNSSEC_PROTOCOL  # type: ignore[attr-defined]
                ):
                    continue
                if not key.flags & ZONE_KEY_FLAG:  # type: ignore[attr-defined]
                    continue
                try:
                    made = dns.dnssec.make_ds(zone, key, ds.digest_type, validating=True)
                except (dns.dnssec.UnsupportedAlgorithm, ValueError):
                    continue
                if made.digest == ds.digest:
                    trusted.add(key)
    if not trusted:
        return bogus(f"no DNSKEY of {zone} matches its DS or trust anchor", Ede.DNSKEY_MISSING)
    verdict = verify_rrset(dnskeys, sigs, zone, trusted, now, budget)
    if verdict.security is Security.SECURE:
        return verdict
    if verdict.security is Security.INSECURE:
        return verdict
    return bogus(f"DNSKEY set of {zone}: {verdict.reason}", verdict.ede or Ede.DNSSEC_BOGUS)

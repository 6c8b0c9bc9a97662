"""The trust-anchor sentinel (RFC 8509): may a secure answer for this name be given?

Owns: recognising `root-key-sentinel-is-ta-NNNNN` and `root-key-sentinel-not-ta-NNNNN`
query names and deciding, from the root's trust anchors, whether a validated answer for
them must become SERVFAIL (so clients can learn which root keys a resolver trusts).
Must never: resolve, validate or change anything but that one decision.
"""

from __future__ import annotations

import dns.dnssec
import dns.name
import dns.rdatatype

from poisonproof.resolver.anchors import TrustAnchors

IS_TA = b"root-key-sentinel-is-ta-"
NOT_TA = b"root-key-sentinel-not-ta-"


def root_key_tags(anchors: TrustAnchors) -> set[int]:
    tags = {ds.key_tag for ds in anchors.ds.get(dns.name.root, ())}  # type: ignore[attr-defined]
    tags |= {dns.dnssec.key_id(k) for k in anchors.dnskey.get(dns.name.root, ())}  # type: ignore[arg-type]
    return tags


def sentinel_fails(qname: dns.name.Name, qtype: int, anchors: TrustAnchors) -> bool:
    """True when RFC 8509 turns a secure answer for `qname` into SERVFAIL (A/AAAA only)."""
    if not qname.labels or qtype not in (dns.rdatatype.A, dns.rdatatype.AAAA):
        return False
    label = qname.labels[0].lower()
    for prefix, wanted in ((IS_TA, True), (NOT_TA, False)):
        if label.startswith(prefix):
            digits = label[len(prefix) :]
            if len(digits) != 5 or not digits.isdigit():
                return False
            trusted = int(digits) in root_key_tags(anchors)
            return trusted != wanted
    return False

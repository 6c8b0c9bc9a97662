"""RFC 8509 trust-anchor sentinel decisions (resolver/sentinel.py)."""

from __future__ import annotations

import dns.name
import dns.rdatatype

from poisonproof.resolver.anchors import TrustAnchors
from poisonproof.resolver.sentinel import sentinel_fails

ANCHORS = TrustAnchors()
ANCHORS.add_text([". IN DS 48409 8 2 " + "3D" * 32])
A, TXT = dns.rdatatype.A, dns.rdatatype.TXT


def _fails(name: str, rdtype: int = A) -> bool:
    return sentinel_fails(dns.name.from_text(name), rdtype, ANCHORS)


def test_is_ta_fails_for_a_key_not_trusted_and_passes_for_a_trusted_one() -> None:
    assert not _fails("root-key-sentinel-is-ta-48409.example.")
    assert _fails("root-key-sentinel-is-ta-20326.example.")


def test_not_ta_fails_for_a_trusted_key() -> None:
    assert _fails("ROOT-KEY-SENTINEL-NOT-TA-48409.example.")
    assert not _fails("root-key-sentinel-not-ta-20326.example.")


def test_only_address_queries_and_well_formed_labels_count() -> None:
    assert not _fails("root-key-sentinel-not-ta-48409.example.", TXT)
    assert not _fails("root-key-sentinel-not-ta-4840.example.")
    assert not _fails("x.root-key-sentinel-not-ta-48409.example.")

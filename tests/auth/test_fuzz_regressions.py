"""Inputs the fuzzers (fuzz/run.py) found crashing the authoritative side, kept as tests."""

from __future__ import annotations

import pytest

from poisonproof.auth.zones import ZoneError, load_zone


@pytest.mark.parametrize("text", ["", "\n; only a comment\n", "www 300 IN A 192.0.2.1\n"])
def test_a_zone_file_without_origin_is_a_zone_error(tmp_path, text):
    """Found by the `zone` fuzz target: an empty file (or one with no $ORIGIN and no
    origin given) made dnspython fail an internal assert, which escaped `load_zone` as an
    AssertionError instead of the `ZoneError` the server reports (and keeps serving on)."""
    path = tmp_path / "empty.zone"
    path.write_text(text)
    with pytest.raises(ZoneError, match=r"^.*empty\.zone:1: "):
        load_zone(path)


def test_an_soa_away_from_the_origin_is_a_zone_error(tmp_path):
    """Found by the `zone` fuzz target: an SOA owned by a name other than the origin (a
    typo such as `@!`) made dnspython raise ValueError("add() has non-origin SOA") out of
    `load_zone`: a reload with such a file would have crashed instead of being refused."""
    path = tmp_path / "typo.zone"
    path.write_text(
        "$ORIGIN victim.test.\n$TTL 300\n@ SOA ns1 host 1 2 3 4 60\n@ NS ns1\nns1 A 10.0.0.3\n"
        "www SOA ns1 host 1 2 3 4 60\n"
    )
    with pytest.raises(ZoneError, match=r"typo\.zone:1: .*non-origin SOA"):
        load_zone(path)

"""Zone loading: broken files are refused with `file:line: what is wrong`."""

from __future__ import annotations

import pytest

from poisonproof.auth.zones import ZoneError, ZoneSet, load_zone, load_zones

GOOD = "$ORIGIN t.\n$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 10.0.0.1\n"


def write(tmp_path, text, name="z.zone"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (GOOD + "www A 10.0.0\n", 6, "malformed"),
        (GOOD + "\n; comment\nwww A 10.0.0.300\n\n", 8, "www A 10.0.0.300"),
        (GOOD + "www BOGUSTYPE 1\n", 6, "BOGUSTYPE"),
        (GOOD + "www.other. A 10.0.0.1\n", 6, "outside the zone origin"),
        ("$ORIGIN t.\n$TTL 60\n@ NS ns\nns A 10.0.0.1\n", 1, "no SOA"),
        ("$ORIGIN t.\n$TTL 60\n@ SOA ns hm 1 2 3 4 5\nns A 10.0.0.1\n", 1, "no NS"),
    ],
)
def test_broken_zone_names_file_and_line(tmp_path, text, line, words):
    path = write(tmp_path, text)
    with pytest.raises(ZoneError) as error:
        load_zone(path)
    assert str(error.value).startswith(f"{path}:{line}: ")
    assert words in str(error.value)


def test_missing_file(tmp_path):
    with pytest.raises(ZoneError, match="cannot read zone file"):
        load_zone(tmp_path / "absent.zone")


def test_indexes_names_cuts_and_empty_non_terminals(tmp_path):
    served = load_zone(
        write(tmp_path, GOOD + "a.b.c A 10.0.0.2\nsub NS ns.sub\nns.sub A 10.0.0.3\n")
    )
    names = {n.to_text() for n in served.names}
    assert {"b.c.t.", "c.t.", "a.b.c.t.", "sub.t."} <= names
    assert {c.to_text() for c in served.cuts} == {"sub.t."}
    assert served.negative_ttl == 5


def test_origin_override_and_duplicate_zone(tmp_path):
    path = write(tmp_path, "$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 10.0.0.1\n")
    zones = load_zones([f"given.example.={path}"])
    assert [str(z.origin) for z in zones] == ["given.example."]
    with pytest.raises(ZoneError, match="already served"):
        ZoneSet([load_zone(path, "x."), load_zone(path, "x.")])

"""Address specs from the command line."""

from __future__ import annotations

import pytest

from poisonproof.net.address import parse_address


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("127.0.0.1:5300", ("127.0.0.1", 5300)),
        ("127.0.0.2", ("127.0.0.2", 53)),
        ("[::1]:5300", ("::1", 5300)),
        ("::1", ("::1", 53)),
    ],
)
def test_parse(spec, expected):
    assert parse_address(spec) == expected


@pytest.mark.parametrize(
    ("spec", "words"),
    [("localhost:53", "not an IP address"), ("127.0.0.1:70000", "port"), ("[::1", "']'")],
)
def test_errors_name_the_problem(spec, words):
    with pytest.raises(ValueError, match=words):
        parse_address(spec)

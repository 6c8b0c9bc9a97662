"""The flood's guess space: servers × ports × a window of transaction IDs, decoded exactly."""

from __future__ import annotations

import itertools

import pytest

from poisonproof.lab.flood import ID_SPACE, GuessSpace

SERVERS = (("192.0.2.1", 53), ("192.0.2.2", 53))


@pytest.mark.parametrize(("base", "count"), [(0, ID_SPACE), (100, 64), (ID_SPACE - 10, 64)])
def test_every_guess_decodes_to_its_index(base, count):
    space = GuessSpace(SERVERS, (5353, 40000, 61000), id_base=base, id_count=count)
    assert space.size == 2 * 3 * count
    for index in itertools.islice(range(space.size), 0, None, max(1, space.size // 5000)):
        server, port, txid = space.decode(index)
        assert 0 <= txid < ID_SPACE
        assert space.target(server, port, txid) == index


def test_a_window_wraps_at_16_bits_and_holds_nothing_else():
    space = GuessSpace(SERVERS, (5353,), id_base=ID_SPACE - 2, id_count=4)
    ids = {space.decode(i)[2] for i in range(space.size)}
    assert ids == {ID_SPACE - 2, ID_SPACE - 1, 0, 1}
    assert space.target(SERVERS[0], 5353, 2) is None  # just past the window
    assert space.target(SERVERS[0], 5353, ID_SPACE - 3) is None  # just before it
    assert space.target(("192.0.2.9", 53), 5353, 0) is None  # not a server guessed
    assert space.target(SERVERS[1], 5354, 0) is None  # not a port guessed


@pytest.mark.parametrize(("base", "count"), [(-1, 8), (ID_SPACE, 8), (0, 0), (0, ID_SPACE + 1)])
def test_a_window_outside_16_bits_is_refused(base, count):
    with pytest.raises(ValueError, match="16 bits"):
        GuessSpace(SERVERS, (5353,), id_base=base, id_count=count)

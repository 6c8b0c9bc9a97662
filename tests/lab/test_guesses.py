"""The compact guess sequence agrees with listing every guess."""

from __future__ import annotations

import random

import pytest

from poisonproof.lab.guesses import GuessSequence, floor_sum


def test_floor_sum_matches_brute_force():
    rng = random.Random(1)
    for _ in range(500):
        n, m, a, b = (
            rng.randrange(0, 60),
            rng.randrange(1, 50),
            rng.randrange(0, 90),
            rng.randrange(0, 90),
        )
        assert floor_sum(n, m, a, b) == sum((a * i + b) // m for i in range(n))


@pytest.mark.parametrize("size", [1, 2, 7, 64, 1000, 65536 * 3])
def test_sequence_is_a_permutation_with_an_inverse(size):
    seq = GuessSequence.random(size, random.Random(size))
    sample = range(min(size, 5000))
    values = [seq.value(j) for j in sample]
    assert len(set(values)) == len(values)
    assert all(seq.index_of(v) == j for j, v in zip(sample, values, strict=True))


def test_counts_in_a_block_match_listing():
    rng = random.Random(2)
    for _ in range(300):
        size = rng.randrange(1, 3000)
        seq = GuessSequence.random(size, rng)
        start, count = rng.randrange(size), rng.randrange(0, size)
        low = rng.randrange(size)
        high = rng.randrange(low, size + 1)
        listed = sum(1 for j in range(start, start + count) if low <= seq.value(j) < high)
        assert seq.count_in(start, count, low, high) == listed

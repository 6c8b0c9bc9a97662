"""The attacker's guesses as an exact, compact sequence: no per-packet work in a flood.

Owns: a pseudo-random permutation of a guess space (server × port × transaction ID) as an
affine map j -> (a·j + b) mod S with gcd(a, S) = 1, so that guess j of a window is known
without listing the others; the index at which a given target is guessed (the inverse
map); and exact counts of the guesses in an index range that fall into a block of the
space (floor sums, O(log S)). With these a batch of a million forged replies is checked
against the resolver's outstanding queries exactly, in microseconds.
Must never: approximate. Every count here equals what listing the packets would give.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


def floor_sum(n: int, m: int, a: int, b: int) -> int:
    """Sum of floor((a*i + b) / m) for i in [0, n); a, b >= 0, m >= 1 (exact, O(log m))."""
    total = 0
    while True:
        if a >= m:
            total += (n - 1) * n // 2 * (a // m)
            a %= m
        if b >= m:
            total += n * (b // m)
            b %= m
        y_max = a * n + b
        if y_max < m:
            return total
        n, b, m, a = y_max // m, y_max % m, a, m


@dataclass(frozen=True)
class GuessSequence:
    """Guess j (0 <= j < size) is `(step * j + offset) % size`; every value exactly once."""

    size: int
    step: int
    offset: int

    @classmethod
    def random(cls, size: int, rng: random.Random) -> GuessSequence:
        if size < 1:
            raise ValueError("the guess space is empty")
        while True:
            step = rng.randrange(1, size) if size > 1 else 1
            if math.gcd(step, size) == 1:
                return cls(size, step, rng.randrange(size))

    def value(self, index: int) -> int:
        return (self.step * index + self.offset) % self.size

    def index_of(self, value: int) -> int:
        """The j with value(j) == value."""
        inverse = pow(self.step, -1, self.size) if self.size > 1 else 0
        return ((value - self.offset) * inverse) % self.size

    def count_below(self, start: int, count: int, bound: int) -> int:
        """How many guesses j in [start, start+count) have value(j) < bound."""
        if count <= 0 or bound <= 0:
            return 0
        bound = min(bound, self.size)
        # value(j) < bound  <=>  floor((v + size - bound) / size) == 0, with v = value(j)
        b = (self.step * start + self.offset) % self.size
        above = floor_sum(count, self.size, self.step, b + self.size - bound) - floor_sum(
            count, self.size, self.step, b
        )
        return count - above

    def count_in(self, start: int, count: int, low: int, high: int) -> int:
        """How many guesses j in [start, start+count) have low <= value(j) < high."""
        return self.count_below(start, count, high) - self.count_below(start, count, low)

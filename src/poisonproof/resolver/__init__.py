"""The recursive resolver core: iterator, cache, scrubber, defenses, outgoing query rules.

Nothing here does I/O or reads the system clock: the iterator is a generator that yields
the upstream exchanges it needs and receives their results, so the same code runs on the
real network and on the simulated one (see `poisonproof.server.resolver_driver`).
"""

from poisonproof.wire import speedups

speedups.install()  # dnspython's uncompressed Name.to_wire without per-suffix Name objects

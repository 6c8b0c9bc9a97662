"""The network layer: the `Network` interface and its implementations.

Owns everything that touches sockets or the wall clock. The DNS engines above it
(authoritative, resolver) receive bytes and return bytes; they never import from here
except the interface types in `poisonproof.net.base`.
"""

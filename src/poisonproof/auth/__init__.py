"""The authoritative side: zone loading, the answering engine, RRL and zone signing.

Nothing in this package does I/O on the network or reads the system clock; the server
layer feeds it bytes and an injected clock.
"""

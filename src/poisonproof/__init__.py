"""poisonproof: a hardened DNS resolver, an authoritative server and a cache-poisoning lab.

This package root owns only the version string; every component lives in a subpackage
(see shared/DESIGN.md for the layering: cli > lab/audit > server > resolver > auth > net > wire).
"""

__version__ = "0.1.0"

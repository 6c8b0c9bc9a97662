"""Raw-bytes helpers for measured hot paths (question keys, ID and case patching, TTLs).

Everything else uses dnspython; code here exists only where parsing a whole message
per query costs too much, and is tested against dnspython's own parsing.
"""

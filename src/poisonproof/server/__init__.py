"""Frontends: listeners that bind the engines to a network, with reload and shutdown."""

"""Replaying Deckard/testbound .rpl scenarios against our resolver on the simulated network."""

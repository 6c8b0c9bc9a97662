"""The poisoning lab: worlds, attackers, trials, theory, reports."""

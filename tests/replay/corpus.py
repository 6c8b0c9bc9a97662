"""Where the Deckard scenario corpus is, and what to do when it is not there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DEFAULT_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "deckard"
"""The workplace copy: `<repo>/../shared/deckard`."""

REQUIRE_TOOLS = os.environ.get("POISONPROOF_REQUIRE_DECKARD") == "1"
"""Set by .ci/run when the workplace corpus is present: then a missing file is a failure."""


def corpus_dir() -> Path:
    """`POISONPROOF_DECKARD_DIR` when set, else the workplace copy."""
    override = os.environ.get("POISONPROOF_DECKARD_DIR")
    return Path(override) if override else DEFAULT_DIR


def corpus_names() -> list[str]:
    """The `.rpl` file names, for parametrizing at collection time (empty when absent)."""
    directory = corpus_dir()
    return sorted(p.name for p in directory.glob("*.rpl")) if directory.is_dir() else []


def require_corpus() -> Path:
    """The corpus directory; skip when it is missing, or fail when every tool must exist."""
    directory = corpus_dir()
    if not directory.is_dir() or not any(directory.glob("*.rpl")):
        message = (
            f"Deckard scenario corpus not found at {directory} "
            "(set POISONPROOF_DECKARD_DIR to the folder holding the .rpl files)"
        )
        if REQUIRE_TOOLS:
            pytest.fail(message)
        pytest.skip(message)
    return directory


def require_scenario(name: str) -> Path:
    """One corpus file by name, with the same skip/fail rule."""
    path = require_corpus() / name
    if not path.is_file():
        message = f"{name} is missing from the Deckard corpus at {path.parent}"
        if REQUIRE_TOOLS:
            pytest.fail(message)
        pytest.skip(message)
    return path

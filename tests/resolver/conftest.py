"""A small in-process DNS world for the resolver core tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.resolver.inprocess import InProcessWorld

ZONES = Path(__file__).parent / "zones"


@pytest.fixture
def world() -> InProcessWorld:
    w = InProcessWorld()
    w.serve("10.0.0.1", [ZONES / "root.zone"])
    w.serve("10.0.0.2", [ZONES / "test.zone"])
    w.serve("10.0.0.3", [ZONES / "victim.zone"])
    w.serve("10.0.0.66", [ZONES / "evil.zone"])
    w.serve("10.0.0.67", [ZONES / "hosting.zone", ZONES / "glueless.zone"])
    return w

"""An asyncio event loop whose clock is virtual: when nothing is ready, time jumps to
the next timer. A simulated hour of timeouts and TTLs costs milliseconds, and results do
not depend on the machine's speed.

Owns: the loop (`VirtualTimeLoop`), its time, and running a coroutine on it.
Must never: touch real sockets or wait on the real clock; a simulation that waits for
something no timer will ever bring is reported as stalled instead of hanging.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class SimulationStalled(RuntimeError):
    """Everything waits and nothing is scheduled: the simulation can never progress."""


class _VirtualSelector(selectors.BaseSelector):
    """Never reports I/O; `select(timeout)` moves the loop's clock forward by `timeout`."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._loop = loop
        self._keys: dict[Any, selectors.SelectorKey] = {}

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = selectors.SelectorKey(fileobj, _fd(fileobj), events, data)
        self._keys[fileobj] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._keys.pop(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self.register(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise SimulationStalled(
                f"at t={self._loop.time():.6f}s every task waits and no timer is scheduled"
            )
        if timeout > 0:
            self._loop.advance(timeout)
        return []

    def get_map(self) -> Any:
        return self._keys

    def close(self) -> None:
        self._keys.clear()


def _fd(fileobj: Any) -> int:
    return fileobj if isinstance(fileobj, int) else fileobj.fileno()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """`time()` is virtual; it advances only when the loop would otherwise block."""

    def __init__(self, start: float = 0.0) -> None:
        self._virtual_now = start
        super().__init__(selector=_VirtualSelector(self))
        self._clock_resolution = 1e-9

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        self._virtual_now += seconds


def run_virtual(main: Coroutine[Any, Any, T], loop: VirtualTimeLoop | None = None) -> T:
    """Run `main` to completion on a virtual-time loop (a new one unless given)."""
    own = loop is None
    loop = loop or VirtualTimeLoop()
    try:
        return loop.run_until_complete(main)
    finally:
        if own:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

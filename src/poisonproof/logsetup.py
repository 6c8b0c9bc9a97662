"""Logging set-up shared by the command-line entry points: one line per event on stderr.

Owns: the log format. Must never: decide what is logged (the components do).
"""

from __future__ import annotations

import logging
import sys


def configure(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
        force=True,
    )

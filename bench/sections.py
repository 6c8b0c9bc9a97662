"""BENCHMARKS.md sections: each bench script owns one, between its comment markers.

Owns: replacing one named section (`<!-- bench:NAME begin -->` ... `end -->`) in place, or
appending it when the file does not have it yet, and leaving every other line alone.
Must never: rewrite or reorder the other sections (several scripts share the file).
"""

from __future__ import annotations

import re
from pathlib import Path

HEADER = "# Benchmarks\n"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name} begin -->", f"<!-- bench:{name} end -->"


def write_section(path: Path, name: str, body: str) -> None:
    """Put `body` (with or without its own markers) in section `name` of `path`."""
    begin, end = markers(name)
    inner = body.strip("\n")
    if inner.startswith(begin):
        inner = inner[len(begin) :].lstrip("\n")
    if inner.endswith(end):
        inner = inner[: -len(end)].rstrip("\n")
    section = f"{begin}\n{inner}\n{end}"
    current = path.read_text() if path.exists() else HEADER
    pattern = re.compile(rf"{re.escape(begin)}.*?{re.escape(end)}", re.S)
    if pattern.search(current):
        current = pattern.sub(lambda _: section, current, count=1)
    else:
        current = current.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(current)

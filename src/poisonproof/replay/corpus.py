"""Replaying many scenario files and summarizing: the layer the CLI and the tests use.

Owns: expanding paths (files and folders of `.rpl`), running each scenario in every
QNAME-minimisation setting it allows, one result per file, and the summary.
Must never: print (the CLI formats) or decide which failures are expected (the tests'
known-failures list does).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from poisonproof.replay.runner import Outcome, run_file


@dataclass(frozen=True)
class FileResult:
    path: str
    outcomes: tuple[Outcome, ...]

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outcomes)

    @property
    def first_failure(self) -> Outcome | None:
        return next((o for o in self.outcomes if not o.passed), None)

    def to_json(self) -> dict[str, object]:
        return {
            "scenario": self.name,
            "path": self.path,
            "passed": self.passed,
            "runs": [
                {
                    "qmin": o.qmin,
                    "passed": o.passed,
                    "step": o.step,
                    "reason": o.reason,
                    "seconds": o.seconds,
                }
                for o in self.outcomes
            ],
        }


def expand(paths: list[str | Path]) -> list[Path]:
    """Files as given, folders as their `.rpl` files (sorted); FileNotFoundError otherwise."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(path.glob("*.rpl")))
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such scenario file or folder")
    return found


def replay(paths: list[str | Path], seed: int = 0) -> list[FileResult]:
    results = []
    for path in expand(paths):
        try:
            outcomes = tuple(run_file(path, seed))
        except Exception as error:  # unparsable file: a failure with its reason
            outcomes = (Outcome(path.name, True, False, None, f"error: {error}"),)
        results.append(FileResult(str(path), outcomes))
    return results

"""CI's fuzzing: every atheris target in fuzz/ runs for a bounded time from its committed
seed corpus and must find no crash (an exception the entry point does not document, a
reply dnspython cannot parse, a scrubbed record outside the server's bailiwick).

`POISONPROOF_FUZZ_SECONDS` (default 10) sets the time per target; two run at once. A
crash leaves its input in the pytest temporary directory: replay it with
`.venv/bin/python fuzz/run.py --target T --reproduce FILE` and keep it as a test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT / "fuzz" / "run.py"
TARGETS = ["frontend", "auth", "scrubber", "zone", "rpl"]
SECONDS = int(os.environ.get("POISONPROOF_FUZZ_SECONDS", "10"))


def _fuzz(target: str, artifacts: Path) -> dict[str, object]:
    proc = subprocess.run(
        [
            sys.executable,
            str(RUNNER),
            "--target",
            target,
            "--seconds",
            str(SECONDS),
            "--artifacts",
            str(artifacts),
        ],
        capture_output=True,
        text=True,
        timeout=SECONDS + 180,
        cwd=ROOT,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    summary = json.loads(lines[-1]) if lines else {"crash": "no summary", "returncode": -1}
    summary["stderr"] = proc.stderr[-4000:]
    summary["exit"] = proc.returncode
    return summary


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory) -> dict[str, dict[str, object]]:
    artifacts = tmp_path_factory.mktemp("fuzz-artifacts")
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = pool.map(lambda t: (t, _fuzz(t, artifacts)), TARGETS)
        return dict(results)


@pytest.mark.parametrize("target", TARGETS)
def test_seed_corpus_is_committed(target):
    seeds = list((ROOT / "fuzz" / "corpus" / target).iterdir())
    assert len(seeds) >= 10
    assert all(seed.stat().st_size <= 65_535 for seed in seeds)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_target_finds_no_crash(fuzzed, target):
    result = fuzzed[target]
    print(f"{target}: {result.get('executions')} executions in {result.get('seconds')} s")
    assert result["crash"] is None, f"{target}: crash {result['crash']}\n{result['stderr']}"
    assert result["exit"] == 0 and result["returncode"] == 0, result["stderr"]
    assert result["executions"] and result["executions"] >= 200  # it really ran

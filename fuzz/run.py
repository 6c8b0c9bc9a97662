"""Run one coverage-guided fuzz target (atheris/libFuzzer) for a bounded time.

    .venv/bin/python fuzz/run.py --target frontend --seconds 60
    .venv/bin/python fuzz/run.py --target zone --reproduce crash-1234abcd
    .venv/bin/python fuzz/run.py --target rpl --seconds 600 --deep --grow

Owns: starting libFuzzer on a target from `fuzz/targets.py` in a child process, with the
committed seed corpus `fuzz/corpus/<target>/` read but never written (new inputs go to a
scratch corpus unless `--grow` is given), writing crashing inputs to `--artifacts`,
reading libFuzzer's final statistics and printing one JSON summary line: target,
seconds, executions, new corpus inputs, crash file (or null). Exit status 0 means no
crash; 1 means a crash was found (the input is in the artifacts directory).
`--reproduce FILE...` runs the target once on each file without the fuzzer, so a crash
can be replayed and turned into a regression test.
Must never: change the committed corpus without `--grow`, or run without a time bound.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
INSTRUMENT = ["poisonproof", "targets"]
"""Coverage of our own code guides the fuzzer. Instrumenting dnspython too (`--deep`)
adds guidance through its parsers but takes ~12 s before the first input instead of ~4 s,
too slow for CI's short runs."""
MAX_LEN = {"zone": 8192, "rpl": 8192, "frontend": 4096, "auth": 4096, "scrubber": 4096}


def _child(target: str, libfuzzer_args: list[str]) -> None:
    """In the child: instrument the code under test, then hand control to libFuzzer."""
    import atheris

    sys.path.insert(0, str(HERE))
    deep = os.environ.get("POISONPROOF_FUZZ_DEEP") == "1"
    include = [*INSTRUMENT, "dns"] if deep else INSTRUMENT
    with atheris.instrument_imports(include=include):
        import targets

    atheris.Setup([sys.argv[0], *libfuzzer_args], targets.TARGETS[target])
    atheris.Fuzz()


def _reproduce(target: str, files: list[str]) -> int:
    sys.path.insert(0, str(HERE))
    import targets

    for name in files:
        print(f"{name}: ", end="", flush=True)
        targets.TARGETS[target](Path(name).read_bytes())
        print("ok")
    return 0


def fuzz(
    target: str,
    seconds: int,
    artifacts: Path,
    *,
    grow: bool = False,
    seed: int = 1,
    deep: bool = False,
) -> dict[str, object]:
    """Fuzz `target` for `seconds`; the summary (executions, crash file or None)."""
    seeds = CORPUS / target
    artifacts.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"poisonproof-fuzz-{target}-"))
    try:
        corpus_dirs = [str(seeds)] if grow else [str(scratch), str(seeds)]
        args = [
            *corpus_dirs,
            f"-max_total_time={seconds}",
            f"-max_len={MAX_LEN.get(target, 4096)}",
            f"-seed={seed}",
            "-timeout=20",
            "-rss_limit_mb=2048",
            "-print_final_stats=1",
            f"-artifact_prefix={artifacts}/{target}-",
        ]
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", target, "--", *args],
            capture_output=True,
            text=True,
            timeout=seconds + 120,
            env={
                **os.environ,
                "PYTHONHASHSEED": "0",
                "POISONPROOF_FUZZ_DEEP": "1" if deep else "0",
            },
        )
        log = proc.stdout + proc.stderr
        execs = re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
        added = re.search(r"stat::new_units_added:\s*(\d+)", log)
        crash = re.search(r"Test unit written to (\S+)", log)
        summary: dict[str, object] = {
            "target": target,
            "seconds": round(time.monotonic() - started, 1),
            "executions": int(execs.group(1)) if execs else None,
            "new_inputs": int(added.group(1)) if added else None,
            "seed_inputs": len(list(seeds.iterdir())) if seeds.is_dir() else 0,
            "crash": crash.group(1) if crash else None,
            "returncode": proc.returncode,
        }
        if proc.returncode != 0 or crash:
            summary["log_tail"] = log[-4000:]
        return summary
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, choices=sorted(MAX_LEN))
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--artifacts", type=Path, default=Path("fuzz-artifacts"))
    parser.add_argument("--grow", action="store_true", help="add new inputs to the corpus")
    parser.add_argument("--deep", action="store_true", help="instrument all of dnspython")
    parser.add_argument("--reproduce", nargs="+", metavar="FILE")
    return parser.parse_args(argv)


def cli(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        _child(argv[1], argv[3:])
        return 0
    args = _parse(argv)
    if args.reproduce:
        return _reproduce(args.target, args.reproduce)
    summary = fuzz(
        args.target, args.seconds, args.artifacts, grow=args.grow, seed=args.seed, deep=args.deep
    )
    tail = summary.pop("log_tail", None)
    if tail:
        print(tail, file=sys.stderr)
    print(json.dumps(summary))
    return 0 if summary["crash"] is None and summary["returncode"] == 0 else 1


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))

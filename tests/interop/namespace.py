"""Running a helper script inside a fresh user + network namespace (`unshare -rn`).

The helper may bind port 53 on loopback there, as real resolvers need, without touching
the host. It prints one JSON document on stdout; it runs in its own process group,
killed as a whole on timeout or interruption.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_tool


def run_json_in_namespace(helper: Path, args: list[str], timeout: float, what: str) -> Any:
    command = [require_tool("unshare"), "-rn", "--", sys.executable, str(helper), *args]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: killed as one below
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{what} did not finish in {timeout}s\n{err[-5000:]}\n{out[-2000:]}")
    finally:
        if proc.poll() is None:  # e.g. KeyboardInterrupt while waiting
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.returncode != 0:
        pytest.fail(f"{what} failed (exit {proc.returncode})\n{err[-5000:]}\n{out[-2000:]}")
    return json.loads(out)

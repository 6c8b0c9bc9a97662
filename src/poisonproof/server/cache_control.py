"""`poisonproof cache dump` / `load`: the cache file of a running `serve`, by its PID.

Owns: finding the `--cache-file` of a running `poisonproof serve` from its command line
(/proc/PID/cmdline, relative to its working directory), asking it to write the file
(SIGUSR1) and waiting until it has, and handing it a file to merge into its cache
(the file is checked, put in place of the server's cache file, then SIGUSR2).
Must never: signal a process that is not a `poisonproof serve` with a cache file, or
put an unreadable file in place of a server's cache file.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

from poisonproof.resolver.cache_file import CacheFileError, describe


class CacheControlError(Exception):
    """The running server cannot be asked (the message says why)."""


def server_cache_file(pid: int) -> Path:
    """The `--cache-file` of the `poisonproof serve` process `pid`."""
    try:
        argv = [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError as error:
        raise CacheControlError(f"process {pid}: {error.strerror or error}") from None
    if "poisonproof" not in " ".join(argv[:3]) or "serve" not in argv:
        raise CacheControlError(f"process {pid} is not `poisonproof serve`: {' '.join(argv)}")
    for index, arg in enumerate(argv):
        if arg == "--cache-file" and index + 1 < len(argv):
            return cwd / argv[index + 1]
        if arg.startswith("--cache-file="):
            return cwd / arg.split("=", 1)[1]
    raise CacheControlError(f"process {pid} was started without --cache-file")


def _stamp(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def dump(pid: int, out: Path | None = None, timeout: float = 10.0) -> Path:
    """Make the server write its cache file now; copy it to `out` if given."""
    path = server_cache_file(pid)
    before = _stamp(path)
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while _stamp(path) == before:
        if time.monotonic() > deadline:
            raise CacheControlError(f"process {pid} did not write {path} within {timeout:g}s")
        time.sleep(0.05)
    if out is None:
        return path
    shutil.copyfile(path, out)
    return out


def load(pid: int, source: Path) -> Path:
    """Merge the cache file `source` into the running server's cache (expired entries are
    skipped; remaining TTLs count on from the file's expiry times)."""
    path = server_cache_file(pid)
    try:
        describe(source, time.time())  # refuse anything that is not a cache file
    except (CacheFileError, OSError, ValueError) as error:
        raise CacheControlError(str(error)) from None
    if source.resolve() != path.resolve():
        tmp = path.with_name(f".{path.name}.load.tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, path)
    os.kill(pid, signal.SIGUSR2)
    return path

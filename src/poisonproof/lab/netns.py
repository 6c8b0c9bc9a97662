"""Lab hosts as Linux network namespaces joined by veth pairs and a bridge.

What this module owns
---------------------
Every network namespace whose name it builds, ``pp-<pid>-<tag>-<host>``: one per lab host
(client, resolver, root/TLD/victim servers, attacker, ...) and one ``pp-<pid>-<tag>-hub``
that holds the bridge ``br0``. Each host namespace has ``lo`` up and one veth, ``eth0``,
whose other end (``h0``, ``h1``, ... in the hub) is a port of the bridge; the host's
addresses are configured on ``eth0`` as ``/16`` inside :data:`LAB_SUBNET`, so every host
reaches every other on-link and nothing else (there is no default route, and the hub is
not connected to anything). In host namespaces rp_filter is off (the attacker's datagrams
with other hosts' source addresses are delivered) and IPv6 is off (no router
solicitations, no DAD noise); hosts named in ``spoofers`` (default: ``attacker``) get
``net.ipv4.ip_nonlocal_bind=1``. It also owns the processes it starts there
(:meth:`LabNet.popen`, :meth:`LabNet.run`), each in its own process group.

The race window on the links: with ``link_delay``/``link_jitter``/``link_loss`` a ``tc
netem`` qdisc is put on both ends of every link (host ``eth0`` egress and hub ``hN``
egress), so a one-way trip from host to host crosses two links: 2 x ``link_delay``. The
kernel of the machine this was written on has no ``sch_netem`` ("Specified qdisc kind is
unknown"); then nothing is applied, :attr:`LabNet.netem` is False,
:attr:`LabNet.window_source` is ``"none"`` and :attr:`LabNet.netem_detail` says why.
Callers then open the window themselves (``poisonproof auth --answer-delay``) and must
write :meth:`LabNet.record` into their records, so each record says which one produced
it.

Teardown: :meth:`LabNet.down` (also ``__exit__``, an ``atexit`` hook and SIGINT/SIGTERM
handlers, installed only while a lab is up and restored afterwards) first ends the
process groups it started, then any process still inside its namespaces, deletes the
hub-side veths (which takes the peers with them) and the namespaces. It never raises,
can be called any number of times, and SIGINT/SIGTERM are blocked while it runs.
:func:`cleanup_stale` removes namespaces left by a lab whose owning process (the pid in
the name) is dead, e.g. after SIGKILL.

Unprivileged mode: ``ip netns add`` needs CAP_SYS_ADMIN. A user who is not root runs the
lab program through :func:`run_in_user_namespace`, which re-executes it under ``unshare
--user --map-root-user --net --mount --fork --kill-child`` with a private tmpfs on
``/run/netns`` (a tmpfs on ``/run`` when that directory cannot be created; also
``/var/run/netns`` when ``/var/run`` is not ``/run``). Inside, the program is root of its
own user namespace and :class:`LabNet` works unchanged (:attr:`LabNet.mode` is
``"userns"``); the namespaces it makes are invisible outside and disappear with the last
process in them. Verified here (kernel 6.18, util-linux 2.38, iproute2 6.1) as uid 65534
via ``setpriv``: see ``tests/lab/test_netns.py``. The only privilege it needs is that
the kernel lets unprivileged users create user namespaces; where it does not
(``kernel.unprivileged_userns_clone=0``, ``user.max_user_namespaces=0``, AppArmor's
``apparmor_restrict_unprivileged_userns=1``) :func:`userns_available` says no, with
unshare's error. Not needed: ``sch_netem`` (without it the window comes from elsewhere,
as above), setuid helpers, or write access to the machine's ``/run/netns``.

What it must never do
---------------------
* touch the initial network namespace: no interface, address, route, qdisc or sysctl of
  the machine itself is created, changed or deleted (all ``ip``/``tc`` commands name one of
  our namespaces with ``-n``; sysctls are written from inside our namespaces);
* configure an address outside :data:`LAB_SUBNET`, or any route off the lab's ``/16``:
  traffic goes only to namespaces this module created (project rule);
* delete a namespace it did not create (only those its own ``ip netns add`` made, and in
  :func:`cleanup_stale` only ``pp-<pid>-...`` ones whose pid is dead);
* signal a process it did not start (its own process groups, and processes found inside
  its own namespaces).

Everything goes through the ``ip`` and ``tc`` commands (iproute2); a failing command raises
:class:`NetnsError` naming the command and its stderr.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import itertools
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any

log = logging.getLogger("poisonproof.lab.netns")

LAB_SUBNET = ipaddress.IPv4Network("10.53.0.0/16")
"""Only addresses inside it are ever configured."""

PREFIX = "pp-"
"""Every namespace this module creates is named ``pp-<pid>-<tag>-<host>``."""

HUB = "hub"
BRIDGE = "br0"
HOST_IFNAME = "eth0"
COMMAND_TIMEOUT = 20.0
"""Seconds one ``ip``/``tc`` command may take."""
KILL_GRACE = 2.0
"""Seconds processes get between SIGTERM and SIGKILL at teardown."""

_NAME = re.compile(r"[A-Za-z0-9_]{1,32}")
_COUNTER = itertools.count()
_HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class NetnsError(RuntimeError):
    """A namespace operation failed: the command, its exit status and its stderr."""

    def __init__(
        self, message: str, *, command: Sequence[str] = (), returncode: int | None = None
    ) -> None:
        super().__init__(message)
        self.command = tuple(command)
        self.returncode = returncode


@dataclass(frozen=True)
class LabHost:
    """One lab host: a network namespace with addresses on its ``eth0``."""

    name: str
    namespace: str
    addresses: tuple[str, ...]

    @property
    def address(self) -> str:
        """The primary address."""
        return self.addresses[0]


# --------------------------------------------------------------------------- commands


def _which(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise NetnsError(f"`{tool}` is not installed (Debian: iproute2 / util-linux)")
    return path


def _command(
    argv: Sequence[str], *, timeout: float = COMMAND_TIMEOUT, stdin: str | None = None
) -> str:
    """Run one command; its stdout, or NetnsError naming it and its stderr."""
    shown = shlex.join(argv)
    try:
        done = subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise NetnsError(f"`{shown}` timed out after {timeout:g} s", command=argv) from error
    except OSError as error:
        raise NetnsError(f"`{shown}` could not be started: {error}", command=argv) from error
    if done.returncode != 0:
        stderr = done.stderr.strip() or done.stdout.strip() or "(no output)"
        raise NetnsError(
            f"`{shown}` failed (exit {done.returncode}): {stderr}",
            command=argv,
            returncode=done.returncode,
        )
    return done.stdout


def _ip(*args: str, netns: str | None = None, stdin: str | None = None) -> str:
    argv = [_which("ip")]
    if netns is not None:
        argv += ["-n", netns]
    return _command([*argv, *args], stdin=stdin)


def _list_netns() -> list[str]:
    """Names of the named network namespaces (``ip netns list``)."""
    names = []
    for line in _ip("netns", "list").splitlines():
        if line.strip():
            names.append(line.split()[0])
    return names


def _netns_pids(namespace: str) -> list[int]:
    try:
        out = _ip("netns", "pids", namespace)
    except NetnsError:
        return []
    return [int(word) for word in out.split() if word.isdigit()]


def _kill_pids_in(namespace: str) -> None:
    """SIGKILL every process still inside one of our namespaces."""
    me = os.getpid()
    for pid in _netns_pids(namespace):
        if pid != me:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _initial_userns() -> bool:
    """Is this process in the machine's own user namespace (identity uid map)?"""
    try:
        with open("/proc/self/uid_map") as handle:
            lines = handle.read().split()
    except OSError:
        return True
    return lines == ["0", "0", "4294967295"]


@contextlib.contextmanager
def _signals_blocked() -> Iterator[None]:
    """SIGINT and SIGTERM held back (delivered afterwards) in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, set(_HANDLED_SIGNALS))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


# ------------------------------------------------------- teardown on exit and signals

_registry_lock = threading.RLock()
_active: list[LabNet] = []
_previous_handlers: dict[int, Any] = {}


def _teardown_all() -> None:
    with _registry_lock:
        labs = [lab for lab in _active if lab._owner_pid == os.getpid()]
    for lab in reversed(labs):
        lab.down()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """Tear every lab of this process down, then do what the previous handler did."""
    previous = _previous_handlers.get(signum, signal.SIG_DFL)
    _teardown_all()
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _install_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in _HANDLED_SIGNALS:
        current = signal.getsignal(signum)
        if current is _on_signal or current is None or current == signal.SIG_IGN:
            continue  # already ours; set from C (cannot be restored); ignored on purpose
        _previous_handlers[signum] = current
        signal.signal(signum, _on_signal)


def _restore_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # left installed: with no lab up it only passes the signal on
    for signum, previous in list(_previous_handlers.items()):
        if signal.getsignal(signum) is _on_signal:
            signal.signal(signum, previous)
        del _previous_handlers[signum]


def _register(lab: LabNet) -> None:
    with _registry_lock:
        if lab in _active:
            return
        _active.append(lab)
        if len(_active) == 1:
            atexit.register(_teardown_all)
            _install_handlers()


def _unregister(lab: LabNet) -> None:
    with _registry_lock:
        if lab in _active:
            _active.remove(lab)
        if not _active:
            atexit.unregister(_teardown_all)
            _restore_handlers()


# ------------------------------------------------------------------------------- lab


def _check_address(text: str) -> str:
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError as error:
        raise ValueError(f"{text!r} is not an IPv4 address") from error
    if address not in LAB_SUBNET:
        raise ValueError(f"{address} is outside the lab subnet {LAB_SUBNET}")
    if address in (LAB_SUBNET.network_address, LAB_SUBNET.broadcast_address):
        raise ValueError(f"{address} is the network or broadcast address of {LAB_SUBNET}")
    return str(address)


class LabNet:
    """Lab hosts in network namespaces on one bridge; a context manager that builds them.

    ``hosts`` maps a host name (letters, digits, ``_``; not ``hub``) to its addresses, all
    inside :data:`LAB_SUBNET`, the first one primary. ``tag`` (same characters; default a
    per-process counter) and the owning pid make the namespace names unique, so labs of
    parallel processes or in one process do not collide. ``link_delay`` and
    ``link_jitter`` are seconds per link, ``link_loss`` a probability per link (0..1); see
    the module docstring for where they are applied, and :attr:`netem` for whether they
    were. Hosts named in ``spoofers`` may bind addresses they do not have.
    """

    def __init__(
        self,
        hosts: Mapping[str, Sequence[str]],
        *,
        tag: str | None = None,
        link_delay: float = 0.0,
        link_jitter: float = 0.0,
        link_loss: float = 0.0,
        spoofers: Collection[str] = ("attacker",),
    ) -> None:
        if not hosts:
            raise ValueError("a lab needs at least one host")
        if tag is None:
            tag = f"l{next(_COUNTER)}"
        if not _NAME.fullmatch(tag):
            raise ValueError(f"tag {tag!r}: use 1-32 letters, digits or _")
        for value, what in ((link_delay, "link_delay"), (link_jitter, "link_jitter")):
            if not value >= 0:
                raise ValueError(f"{what} must be >= 0 seconds, got {value}")
        if not 0 <= link_loss <= 1:
            raise ValueError(f"link_loss is a probability (0..1), got {link_loss}")
        seen: dict[str, str] = {}
        self._addresses: dict[str, tuple[str, ...]] = {}
        for name, addresses in hosts.items():
            if not _NAME.fullmatch(name) or name == HUB:
                raise ValueError(f"host name {name!r}: use 1-32 letters, digits or _, not {HUB!r}")
            if isinstance(addresses, str) or not addresses:
                raise ValueError(f"host {name!r}: give a sequence of one or more addresses")
            checked = tuple(_check_address(text) for text in addresses)
            for address in checked:
                if address in seen:
                    raise ValueError(f"{address} is given to both {seen[address]!r} and {name!r}")
                seen[address] = name
            self._addresses[name] = checked
        self.tag = tag
        self.link_delay = float(link_delay)
        self.link_jitter = float(link_jitter)
        self.link_loss = float(link_loss)
        self.spoofers = frozenset(spoofers)
        self.netem = False
        self.window_source = "none"
        self.netem_detail = "lab not built yet"
        self.mode = "root"
        self.teardown_errors: list[str] = []
        self._owner_pid = os.getpid()
        self._name_hosts()
        self._created: list[str] = []  # namespaces our own `ip netns add` made
        self._veths: list[str] = []  # hub-side veth ends
        self._procs: list[subprocess.Popen] = []
        self._up = False
        self._aborted = False

    def _name_hosts(self) -> None:
        self.prefix = f"{PREFIX}{self._owner_pid}-{self.tag}-"
        self.hub_namespace = self.prefix + HUB
        self.host: dict[str, LabHost] = {
            name: LabHost(name, self.prefix + name, addresses)
            for name, addresses in self._addresses.items()
        }

    # ---------------------------------------------------------------- context manager

    def __enter__(self) -> LabNet:
        self.up()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.down()

    @property
    def is_up(self) -> bool:
        return self._up

    @property
    def namespaces(self) -> list[str]:
        """The namespaces this lab made and has not deleted yet."""
        return list(self._created)

    # ------------------------------------------------------------------------- build

    def up(self) -> None:
        """Build the lab; on any failure (or a signal) what was built is torn down."""
        if self._up:
            return
        if os.getpid() != self._owner_pid:  # built in a forked child: that pid owns it
            self._owner_pid = os.getpid()
            self._name_hosts()
        self._aborted = False
        self.teardown_errors = []
        self.mode = "root" if _initial_userns() else "userns"
        _register(self)
        self._up = True
        try:
            self._build()
        except BaseException:
            self.down()
            raise

    def _step(self, *args: str, netns: str | None = None, stdin: str | None = None) -> str:
        if self._aborted:
            raise NetnsError(f"lab {self.prefix}* was torn down while it was being built")
        return _ip(*args, netns=netns, stdin=stdin)

    def _add_netns(self, namespace: str) -> None:
        self._step("netns", "add", namespace)
        self._created.append(namespace)

    def _sysctls(self, namespace: str, values: Mapping[str, str]) -> None:
        """Write /proc/sys values from inside one of our namespaces (never the machine's)."""
        lines = ["set -e"]
        for key, value in values.items():
            path = "/proc/sys/" + key.replace(".", "/")
            if key.startswith("net.ipv6."):  # a kernel without IPv6 has none of these
                lines.append(f"if [ -e {path} ]; then echo {value} > {path}; fi")
            else:
                lines.append(f"echo {value} > {path}")
        self._step("netns", "exec", namespace, "sh", "-c", "\n".join(lines))

    def _build(self) -> None:
        hub = self.hub_namespace
        self._add_netns(hub)
        self._sysctls(hub, {"net.ipv6.conf.all.disable_ipv6": "1"})
        self._step(
            "-batch",
            "-",
            netns=hub,
            stdin=(
                "link set lo up\n"
                f"link add {BRIDGE} type bridge forward_delay 0 stp_state 0\n"
                f"link set {BRIDGE} up\n"
            ),
        )
        for index, host in enumerate(self.host.values()):
            peer = f"h{index}"
            self._add_netns(host.namespace)
            self._step(
                "link", "add", peer, "type", "veth",
                "peer", "name", HOST_IFNAME, "netns", host.namespace,
                netns=hub,
            )  # fmt: skip
            self._veths.append(peer)
            self._step("link", "set", peer, "master", BRIDGE, "up", netns=hub)
            values = {
                "net.ipv4.conf.all.rp_filter": "0",
                "net.ipv4.conf.default.rp_filter": "0",
                f"net.ipv4.conf.{HOST_IFNAME}.rp_filter": "0",
                "net.ipv6.conf.all.disable_ipv6": "1",
                "net.ipv6.conf.default.disable_ipv6": "1",
            }
            if host.name in self.spoofers:
                values["net.ipv4.ip_nonlocal_bind"] = "1"
            self._sysctls(host.namespace, values)
            batch = ["link set lo up"]
            batch += [
                f"address add {address}/{LAB_SUBNET.prefixlen} dev {HOST_IFNAME}"
                for address in host.addresses
            ]
            batch.append(f"link set {HOST_IFNAME} up")
            self._step("-batch", "-", netns=host.namespace, stdin="\n".join(batch) + "\n")
        self._apply_window()

    def _netem_args(self) -> list[str]:
        args = ["netem"]
        if self.link_delay or self.link_jitter:
            args += ["delay", f"{round(self.link_delay * 1e6)}us"]
            if self.link_jitter:
                args.append(f"{round(self.link_jitter * 1e6)}us")
        if self.link_loss:
            args += ["loss", f"{self.link_loss * 100:g}%"]
        return args

    def _apply_window(self) -> None:
        self.netem = False
        self.window_source = "none"
        if not (self.link_delay or self.link_jitter or self.link_loss):
            self.netem_detail = "no link delay, jitter or loss requested"
            return
        tc = shutil.which("tc")
        if tc is None:
            self.netem_detail = "tc (iproute2) is not installed: link delay/jitter/loss not applied"
            return
        modprobe = shutil.which("modprobe")
        if modprobe and os.geteuid() == 0 and self.mode == "root":
            with contextlib.suppress(NetnsError):  # the kernel may also autoload it, or not
                _command([modprobe, "-q", "sch_netem"], timeout=5)
        links = [(host.namespace, HOST_IFNAME) for host in self.host.values()]
        links += [(self.hub_namespace, peer) for peer in self._veths]
        first_ns, first_dev = links[0]
        netem = self._netem_args()
        try:
            _command([tc, "-n", first_ns, "qdisc", "add", "dev", first_dev, "root", *netem])
        except NetnsError as error:
            self.netem_detail = (
                f"tc netem unavailable ({error}): link delay/jitter/loss not applied; "
                "the race window must come from elsewhere (e.g. auth --answer-delay)"
            )
            log.info("lab %s*: %s", self.prefix, self.netem_detail)
            return
        for namespace, device in links[1:]:
            if self._aborted:
                raise NetnsError(f"lab {self.prefix}* was torn down while it was being built")
            _command([tc, "-n", namespace, "qdisc", "add", "dev", device, "root", *netem])
        self.netem = True
        self.window_source = "netem"
        self.netem_detail = (
            f"tc {' '.join(netem)} on both ends of every link "
            "(one-way host to host crosses two links)"
        )

    def record(self) -> dict[str, Any]:
        """What a trial record should say about the lab and its race window."""
        return {
            "lab": "netns",
            "mode": self.mode,
            "tag": self.tag,
            "hosts": {name: list(host.addresses) for name, host in self.host.items()},
            "window_source": self.window_source,
            "netem": self.netem,
            "netem_detail": self.netem_detail,
            "link_delay": self.link_delay,
            "link_jitter": self.link_jitter,
            "link_loss": self.link_loss,
            "link_window_applied": self.netem,
        }

    # ----------------------------------------------------------------------- teardown

    def down(self) -> None:
        """Tear everything down; idempotent, never raises, not interrupted by SIGINT/TERM."""
        self._aborted = True
        try:
            with _signals_blocked():
                self._teardown()
        except BaseException as error:  # never raise from teardown
            self.teardown_errors.append(repr(error))
            log.warning("lab %s* teardown: %r", self.prefix, error)
        finally:
            self._up = False
            _unregister(self)

    def _note(self, error: BaseException) -> None:
        self.teardown_errors.append(str(error))
        log.warning("lab %s* teardown: %s", self.prefix, error)

    def _teardown(self) -> None:
        self._end_processes()
        for namespace in list(self._created):
            try:
                _kill_pids_in(namespace)
            except Exception as error:
                self._note(error)
        while self._veths:
            peer = self._veths.pop()
            try:
                _ip("link", "del", peer, netns=self.hub_namespace)
            except NetnsError as error:
                self._note(error)
        while self._created:
            namespace = self._created.pop()
            try:
                _ip("netns", "del", namespace)
            except NetnsError as error:
                self._note(error)

    def _end_processes(self) -> None:
        procs, self._procs = self._procs, []
        for sig in (signal.SIGTERM, signal.SIGKILL):
            living = [proc for proc in procs if proc.returncode is None]
            for proc in living:
                _signal_group(proc, sig)
            deadline = time.monotonic() + KILL_GRACE
            for proc in living:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(max(0.0, deadline - time.monotonic()))

    # ------------------------------------------------------------------------ use

    def _namespace_of(self, host: str) -> str:
        if host not in self.host:
            raise ValueError(f"no host {host!r} in this lab (hosts: {', '.join(self.host)})")
        if not self._up:
            raise NetnsError(f"lab {self.prefix}* is not up")
        return self.host[host].namespace

    def popen(self, host: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen:
        """Start ``argv`` inside ``host``'s namespace in a new process group (ended at down)."""
        if isinstance(argv, str):
            raise TypeError("argv is a sequence of arguments, not a string")
        if kwargs.get("shell"):
            raise ValueError("shell=True is not supported; pass ['sh', '-c', ...]")
        namespace = self._namespace_of(host)
        kwargs.pop("start_new_session", None)
        kwargs.pop("process_group", None)
        proc = subprocess.Popen(
            [_which("ip"), "netns", "exec", namespace, *argv], start_new_session=True, **kwargs
        )
        self._procs = [p for p in self._procs if p.returncode is None]
        self._procs.append(proc)
        return proc

    def run(
        self,
        host: str,
        argv: Sequence[str],
        timeout: float = 30,
        *,
        input: str | bytes | None = None,
        check: bool = False,
        capture_output: bool = False,
        **kwargs: Any,
    ) -> subprocess.CompletedProcess:
        """Like :func:`subprocess.run` inside ``host``'s namespace; a timeout kills its group."""
        if capture_output:
            kwargs["stdout"] = subprocess.PIPE
            kwargs["stderr"] = subprocess.PIPE
        if input is not None:
            kwargs["stdin"] = subprocess.PIPE
        proc = self.popen(host, argv, **kwargs)
        try:
            stdout, stderr = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired as error:
            _signal_group(proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                error.output, error.stderr = proc.communicate(timeout=KILL_GRACE)
            raise
        except BaseException:
            _signal_group(proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(KILL_GRACE)
            raise
        done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
        if check:
            done.check_returncode()
        return done

    def owns(self, address: str) -> bool:
        """Is ``address`` one of our hosts' addresses?"""
        try:
            text = str(ipaddress.ip_address(address))
        except ValueError:
            return False
        return any(text in host.addresses for host in self.host.values())

    def __repr__(self) -> str:
        state = "up" if self._up else "down"
        hosts = ", ".join(f"{h.name}={'+'.join(h.addresses)}" for h in self.host.values())
        return f"<LabNet {self.prefix}* {state} {hosts} window={self.window_source}>"

    # ---------------------------------------------------------------------- checks

    @staticmethod
    def available() -> tuple[bool, str]:
        """Can a lab be built by this process, and if not, why not.

        True for root (in the initial user namespace, or inside
        :func:`run_in_user_namespace`) when a namespace can really be added. A user who is
        not root gets False, with whether :func:`run_in_user_namespace` would work.
        """
        if shutil.which("ip") is None:
            return False, "iproute2 `ip` is not installed"
        if os.geteuid() != 0:
            usable, why = userns_available()
            hint = (
                "run the lab program through poisonproof.lab.netns.run_in_user_namespace() "
                "(unprivileged user namespaces work here)"
                if usable
                else f"and unprivileged user namespaces are not usable: {why}"
            )
            return False, f"not root (euid {os.geteuid()}): `ip netns add` needs it; {hint}"
        probe = f"{PREFIX}{os.getpid()}-probe{next(_COUNTER)}-{HUB}"
        try:
            _ip("netns", "add", probe)
        except NetnsError as error:
            return False, str(error)
        try:
            _ip("netns", "del", probe)
        except NetnsError as error:
            return False, str(error)
        where = "the initial user namespace" if _initial_userns() else "a user namespace"
        return True, f"root in {where}: network namespaces can be added"


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Signal the process group of a child we started, only while it is not yet reaped.

    An unreaped child (running or zombie) keeps its pid, so the group id is still ours.
    """
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


# ----------------------------------------------------------------- stale labs, userns


def cleanup_stale(prefix: str = PREFIX) -> list[str]:
    """Delete ``<prefix><pid>-...`` namespaces whose owning pid is dead; their names.

    Processes still inside such a namespace (lab servers orphaned by a SIGKILLed owner)
    are killed first, so nothing keeps the namespace or its veths alive.
    """
    if not prefix:
        raise ValueError("a prefix is required")
    pattern = re.compile(re.escape(prefix) + r"(\d+)-")
    removed = []
    for name in _list_netns():
        match = pattern.match(name)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        _kill_pids_in(name)
        try:
            _ip("netns", "del", name)
        except NetnsError as error:
            log.warning("stale lab namespace %s: %s", name, error)
            continue
        removed.append(name)
    return removed


_USERNS_SETUP = r"""
set -eu
private_dir() {  # a private tmpfs at $1, or on its parent when $1 cannot be made
    if [ -d "$1" ]; then
        mount -t tmpfs -o mode=0755 poisonproof-netns "$1"
    elif ! mkdir "$1" 2>/dev/null; then
        mount -t tmpfs -o mode=0755 poisonproof-run "$(dirname "$1")"
        mkdir "$1"
    fi
}
private_dir /run/netns
if [ "$(readlink -f /var/run)" != "$(readlink -f /run)" ]; then
    private_dir /var/run/netns
fi
export POISONPROOF_USERNS=1
exec "$@"
"""


def _userns_argv(argv: Sequence[str]) -> list[str]:
    unshare = _which("unshare")
    return [
        unshare, "--user", "--map-root-user", "--net", "--mount", "--fork", "--kill-child",
        "sh", "-c", _USERNS_SETUP, "poisonproof-userns", *argv,
    ]  # fmt: skip


def run_in_user_namespace(
    argv: Sequence[str], *, timeout: float | None = None, **kwargs: Any
) -> int:
    """Run ``argv`` as root of a new user namespace where :class:`LabNet` works; its exit code.

    The command gets its own user, network and mount namespaces (``unshare --user
    --map-root-user --net --mount --fork --kill-child``) and a private tmpfs where ``ip
    netns`` keeps its names; nothing it builds is visible outside, and it all disappears
    with its last process. It runs in a new process group: SIGINT/SIGTERM received by
    this process while waiting are passed to it (so its LabNet tears down), and the call
    still returns its exit status (128+N when it died of signal N). ``kwargs`` go to
    :class:`subprocess.Popen`. On ``timeout`` the group is killed and
    :class:`subprocess.TimeoutExpired` raised.
    """
    if isinstance(argv, str):
        raise TypeError("argv is a sequence of arguments, not a string")
    kwargs.pop("start_new_session", None)
    kwargs.pop("process_group", None)
    proc = subprocess.Popen(_userns_argv(argv), start_new_session=True, **kwargs)

    def forward(signum: int, frame: FrameType | None) -> None:
        _signal_group(proc, signum)

    installed: dict[int, Callable[..., Any] | int | None] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in _HANDLED_SIGNALS:
            installed[signum] = signal.signal(signum, forward)
    try:
        try:
            returncode = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(KILL_GRACE)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
            raise
    finally:
        for signum, previous in installed.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
    return returncode if returncode >= 0 else 128 - returncode


def userns_available() -> tuple[bool, str]:
    """Would :func:`run_in_user_namespace` let this user add a network namespace?"""
    if shutil.which("unshare") is None:
        return False, "`unshare` (util-linux) is not installed"
    if shutil.which("ip") is None:
        return False, "iproute2 `ip` is not installed"
    probe = ["ip", "netns", "add", f"{PREFIX}{os.getpid()}-probe-{HUB}"]
    try:
        _command(_userns_argv(probe), timeout=15)
    except NetnsError as error:
        return False, str(error)
    return True, "unprivileged user namespaces can add network namespaces"

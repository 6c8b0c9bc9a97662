"""Lab hosts in real network namespaces: reachability, spoofing, the race-window record,
teardown on exit / exception / SIGINT / SIGTERM / SIGKILL (stale cleaner), and the same
lab built by an unprivileged user inside a user namespace."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from poisonproof.lab import netns
from poisonproof.lab.netns import LAB_SUBNET, LabHost, LabNet, NetnsError, cleanup_stale
from tests.conftest import REQUIRE_TOOLS

SRC = str(Path(netns.__file__).resolve().parents[2])  # .../src, for children run as nobody

HOSTS = {
    "resolver": ["10.53.0.2"],
    "auth": ["10.53.0.3", "10.53.0.4"],
    "attacker": ["10.53.0.66"],
}

ECHO_SERVER = """
import selectors, socket, sys
sel = selectors.DefaultSelector()
for address in sys.argv[1:]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((address, 5300))
    sel.register(s, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        data, peer = key.fileobj.recvfrom(2048)
        key.fileobj.sendto(b"echo:" + data, peer)
"""

ECHO_CLIENT = """
import json, socket, sys
out = []
for target in sys.argv[1:]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(b"hi " + target.encode(), (target, 5300))
    data, peer = s.recvfrom(2048)
    out.append([target, peer[0], data.decode()])
print(json.dumps(out))
"""

LISTENER = """
import json, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.53.0.2", 5301))
s.settimeout(5)
print("ready", flush=True)
data, peer = s.recvfrom(2048)
print(json.dumps([peer[0], peer[1], data.decode()]), flush=True)
"""

SPOOFER = """
import socket, struct
src, dst, sport, dport, payload = "10.53.0.3", "10.53.0.2", 53, 5301, b"spoofed answer"
udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, socket.IPPROTO_UDP, 0,
                 socket.inet_aton(src), socket.inet_aton(dst))
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
s.sendto(ip + udp, (dst, 0))
"""


def require_lab() -> None:
    ok, why = LabNet.available()
    if not ok:
        if REQUIRE_TOOLS:
            pytest.fail(f"network namespace lab not available: {why}")
        pytest.skip(f"network namespace lab not available: {why}")


def new_tag() -> str:
    return "t" + uuid.uuid4().hex[:10]


def namespaces_with(tag: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return [line.split()[0] for line in out.stdout.splitlines() if f"-{tag}-" in line]


def gone(pid: int) -> bool:
    """No such process, or only a zombie left for its new parent to reap."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def wait_gone(pid: int, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _default_signals() -> None:
    # a test run started in the background (`cmd &`, nohup) passes SIGINT ignored to its
    # children; the child must see SIGINT/SIGTERM as a user's terminal would send them
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


def python_child(code: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
        preexec_fn=_default_signals,
    )


@pytest.fixture(scope="module")
def lab() -> Iterator[LabNet]:
    require_lab()
    with LabNet(HOSTS, tag=new_tag(), link_delay=0.002) as built:
        yield built


# ------------------------------------------------------------------ no root needed


@pytest.mark.parametrize(
    "hosts",
    [
        {"a": ["10.54.0.1"]},
        {"a": ["192.168.1.1"]},
        {"a": ["127.0.0.1"]},
        {"a": ["10.53.0.0"]},
        {"a": ["10.53.255.255"]},
        {"a": ["10.53.0.2"], "b": ["10.53.0.5", "10.0.0.1"]},
        {"a": ["not-an-address"]},
        {"a": ["10.53.0.2"], "b": ["10.53.0.2"]},
        {"a": []},
        {"a": "10.53.0.2"},
        {"bad-name": ["10.53.0.2"]},
        {"hub": ["10.53.0.2"]},
        {},
    ],
)
def test_refuses_addresses_outside_the_lab_subnet_and_bad_hosts(hosts):
    with pytest.raises(ValueError):
        LabNet(hosts)


def test_refuses_bad_tags_and_link_parameters():
    for kwargs in ({"tag": "a-b"}, {"tag": ""}, {"link_delay": -1}, {"link_loss": 1.5}):
        with pytest.raises(ValueError):
            LabNet({"a": ["10.53.0.2"]}, **kwargs)


def test_owns_and_names_without_building():
    built = LabNet(HOSTS, tag="names")
    assert built.owns("10.53.0.3") and built.owns("10.53.0.4") and built.owns("10.53.0.66")
    assert not built.owns("10.53.0.5")
    assert not built.owns("127.0.0.1")
    assert not built.owns("garbage")
    assert built.host["auth"] == LabHost(
        "auth", f"pp-{os.getpid()}-names-auth", tuple(HOSTS["auth"])
    )
    assert built.host["auth"].address == "10.53.0.3"
    addresses = [a for h in built.host.values() for a in h.addresses]
    assert all(netns.ipaddress.ip_address(a) in LAB_SUBNET for a in addresses)
    with pytest.raises(ValueError):
        built.popen("nobody", ["true"])
    with pytest.raises(NetnsError):
        built.popen("auth", ["true"])  # not up
    built.down()  # never built: a no-op


def test_available_says_why():
    ok, why = LabNet.available()
    assert isinstance(ok, bool) and why


# --------------------------------------------------------------- the 3-host lab


def test_udp_echo_between_hosts(lab):
    server = lab.popen(
        "auth", [sys.executable, "-c", ECHO_SERVER, "10.53.0.3", "10.53.0.4"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stdout.readline().strip() == "ready"
    done = lab.run(
        "resolver",
        [sys.executable, "-c", ECHO_CLIENT, "10.53.0.3", "10.53.0.4"],
        timeout=10,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == [
        ["10.53.0.3", "10.53.0.3", "echo:hi 10.53.0.3"],
        ["10.53.0.4", "10.53.0.4", "echo:hi 10.53.0.4"],
    ]
    assert server.poll() is None  # still serving: ended by the lab's teardown


def test_attacker_spoofed_source_reaches_resolver(lab):
    listener = lab.popen(
        "resolver", [sys.executable, "-c", LISTENER], stdout=subprocess.PIPE, text=True
    )
    assert listener.stdout.readline().strip() == "ready"
    lab.run("attacker", [sys.executable, "-c", SPOOFER], timeout=10, check=True)
    out, _ = listener.communicate(timeout=10)
    assert json.loads(out) == ["10.53.0.3", 53, "spoofed answer"]


def test_sysctls_inside_host_namespaces(lab):
    def read(host: str, key: str) -> str:
        path = "/proc/sys/" + key.replace(".", "/")
        return lab.run(host, ["cat", path], capture_output=True, text=True, check=True).stdout

    for host in HOSTS:
        for key in ("all", "default", "eth0"):
            assert read(host, f"net.ipv4.conf.{key}.rp_filter").strip() == "0"
    assert read("attacker", "net.ipv4.ip_nonlocal_bind").strip() == "1"
    assert read("resolver", "net.ipv4.ip_nonlocal_bind").strip() == "0"


def test_hosts_reach_nothing_outside_the_lab(lab):
    code = """
import errno, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.connect(("192.0.2.1", 53))   # TEST-NET-1: refused locally, nothing is sent
except OSError as e:
    print(errno.errorcode[e.errno])
"""
    done = lab.run("resolver", [sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "ENETUNREACH"
    routes = lab.run("resolver", ["ip", "-4", "route"], capture_output=True, text=True).stdout
    assert routes.split() == ["10.53.0.0/16", "dev", "eth0", "proto", "kernel", "scope", "link",
                              "src", "10.53.0.2"]  # fmt: skip


def test_link_window_recorded(lab):
    """netem where the kernel has it; here (no sch_netem) the fallback is recorded."""
    probe = lab.run(
        "resolver",
        ["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
        capture_output=True,
        text=True,
    )
    record = lab.record()
    assert record["link_delay"] == 0.002
    if probe.returncode == 0:
        lab.run("resolver", ["tc", "qdisc", "del", "dev", "lo", "root"], check=True)
        assert lab.netem and lab.window_source == "netem" and record["window_source"] == "netem"
        qdiscs = lab.run("auth", ["tc", "qdisc", "show", "dev", "eth0"], capture_output=True,
                         text=True).stdout  # fmt: skip
        assert "netem" in qdiscs and "delay 2ms" in qdiscs
    else:
        assert "qdisc kind is unknown" in probe.stderr  # this kernel: no sch_netem
        assert lab.netem is False
        assert lab.window_source == "none"
        assert record["window_source"] == "none" and record["link_window_applied"] is False
        assert "not applied" in record["netem_detail"]
        assert "qdisc kind is unknown" in record["netem_detail"]


def test_no_window_requested_is_recorded_as_none():
    require_lab()
    with LabNet({"a": ["10.53.1.1"]}, tag=new_tag()) as built:
        assert built.netem is False and built.window_source == "none"
        assert "no link delay" in built.netem_detail


# --------------------------------------------------------------------- teardown


def test_teardown_on_exit_leaves_nothing_and_restores_handlers():
    require_lab()
    tag = new_tag()
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    links_before = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    routes_before = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    with LabNet({"a": ["10.53.2.1"], "b": ["10.53.2.2"]}, tag=tag) as built:
        assert sorted(namespaces_with(tag)) == sorted(
            [f"pp-{os.getpid()}-{tag}-{n}" for n in ("a", "b", "hub")]
        )
        # ours while the lab is up; a signal ignored on purpose (a run under nohup or `&`)
        # stays ignored
        expected = signal.SIG_IGN if before[0] == signal.SIG_IGN else netns._on_signal
        assert signal.getsignal(signal.SIGINT) == expected
        assert signal.getsignal(signal.SIGTERM) is netns._on_signal or before[1] == signal.SIG_IGN
        sleeper = built.popen("a", ["sleep", "60"])
    assert namespaces_with(tag) == []
    assert sleeper.returncode is not None and gone(sleeper.pid)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    # the machine's own network namespace was never touched
    links_after = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert [line.split(":")[1] for line in links_after.splitlines()] == [
        line.split(":")[1] for line in links_before.splitlines()
    ]
    assert subprocess.run(["ip", "route"], capture_output=True, text=True).stdout == routes_before
    built.down()  # idempotent
    assert built.teardown_errors == []


def test_teardown_after_an_exception_in_the_with_block():
    require_lab()
    tag = new_tag()
    with pytest.raises(RuntimeError, match="boom"), LabNet({"a": ["10.53.3.1"]}, tag=tag) as b:
        sleeper = b.popen("a", ["sh", "-c", "sleep 60 & sleep 60"])
        raise RuntimeError("boom")
    assert namespaces_with(tag) == []
    assert gone(sleeper.pid)


def test_failed_build_is_torn_down():
    require_lab()
    tag = new_tag()
    first = LabNet({"a": ["10.53.4.1"]}, tag=tag)
    with first:
        twin = LabNet({"a": ["10.53.4.1"], "b": ["10.53.4.2"]}, tag=tag)
        with pytest.raises(NetnsError, match=r"ip netns add .*File exists"):
            twin.up()  # its names are taken by `first`, which must survive this
        assert sorted(namespaces_with(tag)) == sorted(first.namespaces)
    assert namespaces_with(tag) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_teardown_when_the_lab_process_gets_a_signal(signum):
    require_lab()
    tag = new_tag()
    child = python_child(f"""
        import time
        from poisonproof.lab.netns import LabNet
        with LabNet({{"a": ["10.53.5.1"], "b": ["10.53.5.2"]}}, tag="{tag}") as lab:
            sleeper = lab.popen("b", ["sleep", "60"])
            print("up", sleeper.pid, flush=True)
            time.sleep(60)
    """)
    try:
        line = child.stdout.readline().split()
        assert line[:1] == ["up"], child.stderr.read()
        assert len(namespaces_with(tag)) == 3
        child.send_signal(signum)
        child.wait(15)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert namespaces_with(tag) == []
    assert wait_gone(int(line[1]))
    if signum == signal.SIGTERM:
        assert child.returncode == -signal.SIGTERM  # the default action, after teardown
    else:
        assert child.returncode != 0 and "KeyboardInterrupt" in child.stderr.read()


def test_cleanup_stale_after_sigkill():
    require_lab()
    tag = new_tag()
    child = python_child(f"""
        import time
        from poisonproof.lab.netns import LabNet
        lab = LabNet({{"a": ["10.53.6.1"]}}, tag="{tag}")
        lab.up()
        sleeper = lab.popen("a", ["sleep", "60"])
        print("up", sleeper.pid, flush=True)
        time.sleep(60)
    """)
    line = child.stdout.readline().split()
    assert line[:1] == ["up"], child.stderr.read()
    child.kill()  # no teardown possible
    child.wait()
    left = namespaces_with(tag)
    assert len(left) == 2 and not gone(int(line[1]))
    removed = cleanup_stale()
    assert set(left) <= set(removed)
    assert namespaces_with(tag) == []
    assert wait_gone(int(line[1]))


def test_cleanup_stale_spares_living_labs():
    require_lab()
    tag = new_tag()
    with LabNet({"a": ["10.53.7.1"]}, tag=tag) as built:
        removed = cleanup_stale()
        assert not any(f"-{tag}-" in name for name in removed)
        assert sorted(namespaces_with(tag)) == sorted(built.namespaces)


# ------------------------------------------------------------ unprivileged user


USERNS_INNER = """
import json, os, subprocess, sys
from poisonproof.lab.netns import LabNet
ok, why = LabNet.available()
with LabNet({"a": ["10.53.8.1"], "b": ["10.53.8.2"]}, link_delay=0.001) as lab:
    server = lab.popen("b", [sys.executable, "-c", sys.argv[1], "10.53.8.2"],
                       stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().strip() == "ready"
    echo = lab.run("a", [sys.executable, "-c", sys.argv[2], "10.53.8.2"], timeout=10,
                   capture_output=True, text=True, check=True)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    print(json.dumps({"uid": os.getuid(), "available": ok, "why": why, "mode": lab.mode,
                      "echo": json.loads(echo.stdout), "namespaces": listed.split(),
                      "record": lab.record()}))
"""

USERNS_OUTER = """
import json, os, sys
from poisonproof.lab.netns import LabNet, run_in_user_namespace
print(json.dumps({"outer_uid": os.getuid(), "outer_available": LabNet.available()}), flush=True)
sys.exit(run_in_user_namespace([sys.executable, "-c", sys.argv[1], sys.argv[2], sys.argv[3]]))
"""


def python_for(prefix: list[str]) -> str:
    """A Python >= 3.11 the unprivileged user may run (and exec from a shell).

    This test's own interpreter may live where only root can reach it (here: the venv's
    python links into /root/.pyenv, mode 0700); the lab module needs only the stdlib and
    src/ on PYTHONPATH, so the system python serves as well.
    """
    check = 'exec "$0" -c "import sys; assert sys.version_info >= (3, 11)"'
    for candidate in (sys.executable, netns.shutil.which("python3"), "/usr/bin/python3"):
        if candidate and subprocess.run([*prefix, "sh", "-c", check, candidate],
                                        capture_output=True, cwd="/").returncode == 0:  # fmt: skip
            return candidate
    pytest.skip("no Python >= 3.11 that the unprivileged user can run")


def test_unprivileged_user_builds_a_lab_in_a_user_namespace():
    """As uid 65534 (through setpriv when we are root): a 2-host lab and a UDP echo."""
    ok, why = netns.userns_available()
    if not ok:
        if REQUIRE_TOOLS:
            pytest.fail(f"unprivileged user namespaces not usable: {why}")
        pytest.skip(f"unprivileged user namespaces not usable: {why}")
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = netns.shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("setpriv (util-linux) is needed to drop root for this test")
        prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    python = python_for(prefix)
    env = {**os.environ, "PYTHONPATH": SRC, "HOME": "/"}
    done = subprocess.run(
        [*prefix, python, "-c", USERNS_OUTER, USERNS_INNER, ECHO_SERVER, ECHO_CLIENT],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    outer_line, inner_line = done.stdout.splitlines()
    outer, inner = json.loads(outer_line), json.loads(inner_line)
    assert outer["outer_uid"] != 0
    if os.geteuid() == 0:
        assert outer["outer_uid"] == 65534
    assert outer["outer_available"][0] is False
    assert "run_in_user_namespace" in outer["outer_available"][1]
    assert inner["uid"] == 0 and inner["available"] is True and inner["mode"] == "userns"
    assert inner["echo"] == [["10.53.8.2", "10.53.8.2", "echo:hi 10.53.8.2"]]
    assert len(inner["namespaces"]) >= 3  # a, b, hub (and "(id: N)" words)
    assert inner["record"]["mode"] == "userns" and inner["record"]["window_source"] in (
        "netem",
        "none",
    )
    # the user's namespaces lived on a private tmpfs: the machine's list never had them
    visible = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(name in visible for name in inner["namespaces"] if name.startswith("pp-"))

"""Real OpenSSH servers for the SSH transport tests.

:class:`SSHLab` starts ``/usr/sbin/sshd -D -e -f <config>`` processes, each with its own
generated ed25519 host key, a shared ``AuthorizedKeysFile`` holding a generated client
key, ``PermitRootLogin prohibit-password``, ``StrictModes no`` and its pid file and log in
a temporary directory. Two topologies:

``netns`` (root, ``ip netns`` works): every server runs in its own network namespace,
    joined to the host by a veth pair in a /30 of ``10.231.N.0/24`` (N picked so that no
    address or route on the host uses it), listening on port 22 there. A server created
    ``behind=`` another is joined only to that server's namespace, and the host gets an
    ``unreachable`` route for its /30, so it can be reached only through the gateway
    (ProxyJump) and a direct attempt fails locally without sending a packet anywhere.
``loopback`` (fallback, or ``EDGEBENCH_SSH_TOPOLOGY=loopback``): servers listen on
    127.0.0.1 on free ports; "behind" is just another loopback server.

Tests only ever connect to addresses made here. Everything is torn down by
:meth:`SSHLab.close`: server processes (and every process in their namespaces) killed,
routes, links and namespaces deleted.
"""

from __future__ import annotations

import ipaddress
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

SSHD = "/usr/sbin/sshd"
SFTP_SERVER_CANDIDATES = ["/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server"]
SUBNET_PREFIX = "10.231"


class SSHDUnavailable(RuntimeError):
    """sshd is not installed or cannot be started here (the tests skip with this)."""


def _sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done


def keygen(path: Path, comment: str) -> Path:
    """A fresh passphrase-less ed25519 key pair at ``path`` / ``path.pub``."""
    for p in (path, path.with_name(path.name + ".pub")):
        p.unlink(missing_ok=True)
    _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path))
    return path


def fingerprint(pub: Path) -> str:
    """``SHA256:...`` of a public key file, as ssh-keygen prints it."""
    return _sh("ssh-keygen", "-l", "-E", "sha256", "-f", str(pub)).stdout.split()[1]


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, state) for every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        table[int(entry)] = (int(fields[1]), fields[0])
    return table


def descendants(pid: int) -> list[int]:
    table = _proc_table()
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, (pp, _) in table.items() if pp == parent]
        found += kids
        frontier += kids
    return found


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``check`` until it holds or ``timeout`` s pass; returns its last value.

    For outcomes that take a round trip to show (a kill sent over SSH), so tests wait
    as long as a loaded CI machine needs and no longer than that."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def live_processes(*argv: str) -> list[int]:
    """Pids (not zombies) running exactly ``argv``."""
    want = "\0".join(argv).encode() + b"\0"
    hits = []
    for pid, (_, state) in _proc_table().items():
        if state == "Z":
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if cmdline == want:
            hits.append(pid)
    return hits


class SSHServer:
    def __init__(
        self, lab: SSHLab, name: str, host: str, port: int, netns: str | None = None
    ) -> None:
        self.lab = lab
        self.name = name
        self.host = host
        self.port = port
        self.netns = netns
        self.dir = lab.root / f"server-{name}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host_key = keygen(self.dir / "ssh_host_ed25519_key", f"edgebench-test-{name}")
        self.config = self.dir / "sshd_config"
        self.log = self.dir / "sshd.log"
        self.proc: subprocess.Popen | None = None

    # -- what clients use

    @property
    def address(self) -> str:
        return f"{self.lab.user}@{self.host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def known_hosts_line(self) -> str:
        pub = self.host_key.with_name(self.host_key.name + ".pub").read_text().split()
        return f"{self.known_hosts_name} {pub[0]} {pub[1]}\n"

    def fingerprint(self) -> str:
        return fingerprint(self.host_key.with_name(self.host_key.name + ".pub"))

    # -- lifetime

    def start(self) -> SSHServer:
        self.config.write_text(
            f"""\
Port {self.port}
ListenAddress {self.host}
HostKey {self.host_key}
PidFile {self.dir / "sshd.pid"}
AuthorizedKeysFile {self.lab.authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
AllowTcpForwarding yes
MaxStartups 50
LogLevel INFO
Subsystem sftp {self.lab.sftp_server}
# The test "boards" log in as this machine's user, whose ~/.bashrc may run
# `pyenv init` (a rehash under a lock). A session killed mid-rehash by the
# power-cut tests leaves the lock behind and every later login would wait 60 s
# for it; bound that wait.
SetEnv PYENV_REHASH_TIMEOUT=1
"""
        )
        argv = [SSHD, "-D", "-e", "-f", str(self.config)]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        seen = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if b"Server listening on" in self.log.read_bytes()[seen:]:
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise SSHDUnavailable(
            f"sshd for {self.name} did not start: {self.log.read_text(errors='replace')[-800:]}"
        )

    def _pids(self) -> list[int]:
        pids = []
        if self.proc is not None and self.proc.poll() is None:
            pids = [self.proc.pid, *descendants(self.proc.pid)]
        if self.netns:
            found = _sh("ip", "netns", "pids", self.netns, check=False).stdout.split()
            pids += [int(p) for p in found if p.isdigit()]
        return sorted(set(pids))

    def signal_all(self, sig: int) -> None:
        """Send ``sig`` to the listener, its sessions and whatever runs in them."""
        for pid in self._pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        """Kill the server and every session it has (like a crashed or powered-off box)."""
        self.signal_all(signal.SIGCONT)
        self.signal_all(signal.SIGKILL)
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
            self.proc = None

    def restart_with_new_host_key(self) -> None:
        self.stop()
        keygen(self.host_key, f"edgebench-test-{self.name}-new")
        self.start()


class SSHLab:
    """Creates real sshd servers; see the module doc. ``mode`` is "netns" or "loopback"."""

    def __init__(self, root: Path, mode: str | None = None) -> None:
        if not Path(SSHD).exists():
            raise SSHDUnavailable(
                f"{SSHD} not found: install openssh-server (apt-get install openssh-server)"
            )
        if shutil.which("ssh-keygen") is None:
            raise SSHDUnavailable("ssh-keygen not found: install openssh-client")
        self.sftp_server = next(
            (p for p in SFTP_SERVER_CANDIDATES if Path(p).exists()), "internal-sftp"
        )
        self.root = root
        self.user = _user()
        self.client_key = keygen(root / "client_ed25519", "edgebench-test-client")
        self.authorized_keys = root / "authorized_keys"
        self.authorized_keys.write_text(self.client_key.with_name("client_ed25519.pub").read_text())
        # sshd's privilege separation directory (normally made by the service unit).
        try:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        except OSError as e:
            raise SSHDUnavailable(f"cannot create /run/sshd: {e}") from None
        self.servers: list[SSHServer] = []
        self._undo: list[list[str]] = []  # ip commands that remove what was set up
        self._tag = f"{os.getpid() % 100000:05d}"
        self._blocks = 0
        wanted = mode or os.environ.get("EDGEBENCH_SSH_TOPOLOGY") or "netns"
        self.mode = "netns" if wanted == "netns" and self._netns_works() else "loopback"
        self.why_loopback = "" if self.mode == "netns" else self._why_not

    # -- topology

    _why_not = ""

    def _netns_works(self) -> bool:
        if os.geteuid() != 0 or shutil.which("ip") is None:
            self._why_not = "not root or no ip(8)"
            return False
        _cleanup_stale_namespaces()
        probe = f"ebssh{self._tag}-probe"
        try:
            _sh("ip", "netns", "add", probe)
            _sh("ip", "netns", "del", probe)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            self._why_not = str(e)
            return False
        used = _sh("ip", "-4", "-o", "addr").stdout + _sh("ip", "-4", "route").stdout
        free = [n for n in range(1, 255) if f"{SUBNET_PREFIX}.{n}." not in used]
        if not free:
            self._why_not = f"no free {SUBNET_PREFIX}.N.0/24"
            return False
        self._third = random.choice(free)
        return True

    def _block(self) -> tuple[str, str, str]:
        """Next /30: (network/30, first address, second address)."""
        base = 4 * self._blocks
        self._blocks += 1
        if base >= 256:
            raise RuntimeError("out of test subnets")
        net = ipaddress.ip_network(f"{SUBNET_PREFIX}.{self._third}.{base}/30")
        a, b = list(net.hosts())
        return str(net), str(a), str(b)

    def _ip(self, *argv: str, undo: list[str] | None = None) -> None:
        _sh("ip", *argv)
        if undo:
            self._undo.append(undo)

    def server(self, name: str, *, behind: SSHServer | None = None) -> SSHServer:
        """Start a server; with ``behind``, one that only ``behind`` can reach (netns)."""
        if self.mode == "loopback":
            server = SSHServer(self, name, "127.0.0.1", free_port())
        else:
            ns = f"ebssh{self._tag}-{name}"
            self._ip("netns", "add", ns, undo=["netns", "del", ns])
            self._ip("-n", ns, "link", "set", "lo", "up")
            net, near, far = self._block()
            idx = len(self.servers)
            near_if, far_if = f"eb{self._tag}{idx}a", f"eb{self._tag}{idx}b"
            if behind is None:
                self._ip(
                    "link",
                    "add",
                    near_if,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    far_if,
                    "netns",
                    ns,
                    undo=["link", "del", near_if],
                )
                self._ip("addr", "add", f"{near}/30", "dev", near_if)
                self._ip("link", "set", near_if, "up")
            else:
                assert behind.netns is not None
                self._ip(
                    "-n",
                    behind.netns,
                    "link",
                    "add",
                    near_if,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    far_if,
                    "netns",
                    ns,
                )
                self._ip("-n", behind.netns, "addr", "add", f"{near}/30", "dev", near_if)
                self._ip("-n", behind.netns, "link", "set", near_if, "up")
                # The host must never route this test subnet anywhere else.
                self._ip("route", "add", "unreachable", net, undo=["route", "del", net])
            self._ip("-n", ns, "addr", "add", f"{far}/30", "dev", far_if)
            self._ip("-n", ns, "link", "set", far_if, "up")
            server = SSHServer(self, name, far, 22, netns=ns)
        self.servers.append(server)
        return server.start()

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        for undo in reversed(self._undo):
            _sh("ip", *undo, check=False)
        self._undo.clear()


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cleanup_stale_namespaces() -> None:
    """Namespaces left by an earlier test process that died without its teardown."""
    listing = _sh("ip", "netns", "list", check=False).stdout
    for name in re.findall(r"^(ebssh(\d{5})-\S+)", listing, flags=re.M):
        ns, tag = name
        if any(int(tag) == pid % 100000 for pid in _live_pids()):
            continue
        for pid in _sh("ip", "netns", "pids", ns, check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        _sh("ip", "netns", "del", ns, check=False)


def _live_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]

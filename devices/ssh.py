"""Devices reached over SSH (paramiko): lab boards, remote workstations, anything with sshd.

Address: ``DeviceConfig.address`` is ``user@host[:port]`` (``user@[v6addr]:port`` for IPv6;
without ``user@`` the local user name is used; the port defaults to 22).

Options (``DeviceConfig.options``; from ``edgebench device add ... --option k=v`` or a lab
YAML file; strings such as ``"true"``/``"30"`` are accepted for booleans and numbers):

``identity_file``
    Private key file to log in with (OpenSSH format, not passphrase-protected: put an
    encrypted key into ssh-agent instead). Keys in a running ssh-agent (``SSH_AUTH_SOCK``)
    are always tried too; without ``identity_file`` the default ``~/.ssh/id_*`` keys are.
``known_hosts``
    OpenSSH known_hosts file the server's host key is checked against; default
    ``~/.ssh/known_hosts``. ``/etc/ssh/ssh_known_hosts`` is also read (never written).
``trust_on_first_use``
    Boolean, default false. When the host is not in known_hosts at all, accept its key
    and append it to the ``known_hosts`` file as a *hashed* entry (``|1|salt|hash``, as
    OpenSSH writes with ``HashKnownHosts yes``; ``ssh-keygen -F host -f FILE`` finds it).
    A key that differs from a recorded one is refused even with this option.
``proxy_jump``
    ``user@gateway[:port]``: reach the device through one SSH gateway (like ``ssh -J``), via
    a ``direct-tcpip`` channel the gateway opens to ``host:port``. The gateway's host key
    is checked the same way, with the same ``identity_file``/agent and TOFU setting.
``connect_timeout``
    Seconds (default 10) for the TCP connect, the SSH handshake, authentication, and for
    each channel the transport opens. A device that does not answer within it fails with
    :class:`~devices.errors.TransportTimeout`.
``keepalive_s``
    Seconds (default 15) between SSH keepalive messages. The TCP socket also gets
    ``TCP_USER_TIMEOUT`` = 3 x this, so a vanished peer makes the connection fail (and
    every read on it end) instead of hanging on unacknowledged data.
``workdir``
    Where edgebench keeps its files on the device; default ``~/.edgebench``. ``~`` and
    relative paths are resolved against the login's home directory *on the device*, once
    per transport, to an absolute path.
``python``
    Interpreter the agent runs under (default ``python3``, from the login's PATH); set it
    to the venv python :func:`devices.provision.setup_device` returns.

Host keys: an unknown host key is refused with a message naming the host, the key type
and its ``SHA256:`` fingerprint, and how to trust it; a host key that differs from the
known one is always refused ("host key for X changed", both fingerprints). paramiko's
AutoAddPolicy is never used. Key types already known for a host are preferred in the
key exchange, as OpenSSH does, so a server with several host keys is checked against
the one on record.

Connection: one SSH connection per transport instance, opened on first use and shared by
every ``run``/``open_stream``/push (one channel each; OpenSSH allows 10 at once per connection
by default, ``MaxSessions``). If it has dropped, the next call opens a new one; a process
started on the old one reports the loss (:class:`~devices.errors.TransportError` naming
the device) on its next read or write. ``close()`` kills processes still running, closes
the connection, and may be called any number of times.

Remote commands and process groups: a command is never a shell string built from user
input. ``argv`` is wrapped as::

    shlex.join(["exec", "sh", "-c", WRAPPER, "sh", CWD, *argv])
    WRAPPER = 'echo "edgebench-pid $$"; cd "$1" || exit 125; shift; exec "$@"'

sshd runs every exec request in a new session (it calls ``setsid()`` before starting the
login shell; OpenSSH and dropbear both do), and ``exec`` keeps that process id through the
login shell, ``sh`` and the command itself, so the pid the wrapper prints on the first
stdout line (read and removed by the transport) is the id of the command's process group.
To stop a command (``Stream.terminate()`` or a ``run`` timeout) the transport opens
a second exec channel and runs ``sh -c 'kill -KILL -"$1" || kill -KILL "$1"' sh PGID``:
the whole group dies, including background children (``sleep 300 &``). The login shell
must be POSIX-like (sh, dash, ash, bash, zsh), as for scp and rsync.

Errors: paramiko and socket failures become :class:`~devices.errors.TransportError` or
:class:`~devices.errors.TransportTimeout` carrying the device name and a one-line reason
(authentication failed, connection refused, host key unknown/changed, timeout, connection
lost). paramiko's own logger is set to CRITICAL unless the application set a level on
the ``paramiko`` logger, so its tracebacks never reach a user's terminal.

paramiko is imported on first connect, so this module registers the transport even where
paramiko is not installed (using it then raises a TransportError saying so).
"""

from __future__ import annotations

import base64
import getpass
import logging
import os
import posixpath
import re
import shlex
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from devices.errors import CommandError, TransportError, TransportTimeout
from devices.transport import (
    CommandResult,
    DeviceConfig,
    DeviceOptions,
    PosixHost,
    Stream,
    register_transport,
)

if TYPE_CHECKING:  # paramiko is imported lazily, see _paramiko()
    import paramiko

log = logging.getLogger("edgebench.ssh")

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
GLOBAL_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"
DEFAULT_WORKDIR = "~/.edgebench"

# The only shell text the transport sends; user input travels as its positional arguments.
WRAPPER = 'echo "edgebench-pid $$"; cd "$1" || exit 125; shift; exec "$@"'
KILL_GROUP = 'kill -KILL -"$1" 2>/dev/null || kill -KILL "$1"'
_PID_LINE = re.compile(rb"^edgebench-pid (\d+)\r?\n?$")
_MAX_PREAMBLE_LINES = 100  # lines a noisy login shell may print before the pid line

_STALL_S = 60.0  # a write that makes no progress this long means the device stopped reading
_SFTP_TIMEOUT_S = 60.0  # per SFTP request
_HASH_TIMEOUT_S = 300.0

# Fallback for devices without sha256sum; argv[1] is the path. Exit 1: no such file.
_PY_SHA256 = """\
import hashlib, sys
try:
    f = open(sys.argv[1], "rb")
except OSError:
    sys.exit(1)
h = hashlib.sha256()
with f:
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
print(h.hexdigest())
"""

_T = TypeVar("_T")


# --------------------------------------------------------------------------- addresses


@dataclass(frozen=True)
class SSHTarget:
    user: str
    host: str
    port: int = 22

    @property
    def hostport(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """How OpenSSH names this server in known_hosts (host names are lowercased)."""
        host = self.host.lower()
        return host if self.port == 22 else f"[{host}]:{self.port}"

    def __str__(self) -> str:
        return f"{self.user}@{self.hostport}"


def parse_address(text: str) -> SSHTarget:
    """``user@host[:port]`` (``user@[v6]:port``; ``user@`` optional) -> :class:`SSHTarget`."""
    raw = text.strip()
    if not raw:
        raise ValueError("empty address; expected user@host[:port]")
    user, at, hostport = raw.rpartition("@")
    if not at:
        user = getpass.getuser()
    elif not user:
        raise ValueError(f"no user name before '@' in {text!r}")
    port_text = ""
    if hostport.startswith("["):
        host, bracket, rest = hostport[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"bad address {text!r}; expected user@[ipv6]:port")
        port_text = rest[1:]
    elif hostport.count(":") == 1:
        host, _, port_text = hostport.partition(":")
    else:
        host = hostport  # plain name, IPv4, or an IPv6 address without a port
    if not host or any(c.isspace() for c in host):
        raise ValueError(f"no host name in {text!r}; expected user@host[:port]")
    port = 22
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"bad port {port_text!r} in {text!r}")
        port = int(port_text)
    return SSHTarget(user, host, port)


def _as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"", "0", "false", "no", "off"}:
        return False
    raise ValueError(f"option {name}={value!r} is not a boolean (true/false)")


def _as_seconds(value: Any, name: str, default: float) -> float:
    if value is None or value == "":
        return default
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"option {name}={value!r} is not a number of seconds") from None
    if not seconds > 0:
        raise ValueError(f"option {name}={value!r} must be > 0")
    return seconds


# --------------------------------------------------------------------------- known_hosts


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint of a public key."""
    return str(key.fingerprint)


def _key_text(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {fingerprint(key)}"


@dataclass(frozen=True)
class _KnownKey:
    patterns: tuple[str, ...]
    key: paramiko.PKey
    source: str
    revoked: bool


class KnownHosts:
    """The subset of OpenSSH known_hosts this transport needs: plain, wildcard (``*``,
    ``?``, ``!neg``) and hashed (``|1|``) host patterns, ``@revoked`` lines; lines it
    cannot use (``@cert-authority``, unknown key types) are skipped."""

    def __init__(self, paths: list[Path]) -> None:
        self.entries: list[_KnownKey] = []
        for path in paths:
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue  # missing or unreadable: nothing known from it
            for line in text.splitlines():
                entry = self._parse(line, str(path))
                if entry is not None:
                    self.entries.append(entry)

    @staticmethod
    def _parse(line: str, source: str) -> _KnownKey | None:
        from paramiko import PKey

        fields = line.split()
        if not fields or fields[0].startswith("#"):
            return None
        revoked = False
        if fields[0].startswith("@"):
            if fields[0] != "@revoked":
                return None  # @cert-authority: certificates are not supported
            revoked = True
            fields = fields[1:]
        if len(fields) < 3:
            return None
        try:
            key = PKey.from_type_string(fields[1], base64.b64decode(fields[2]))
        except Exception:  # unknown key type or damaged line: OpenSSH skips it too
            return None
        return _KnownKey(tuple(fields[0].split(",")), key, source, revoked)

    @staticmethod
    def matches(name: str, patterns: tuple[str, ...]) -> bool:
        from paramiko.hostkeys import HostKeys

        name = name.lower()
        hit = False
        for pattern in patterns:
            if pattern.startswith("|1|"):
                if HostKeys.hash_host(name, pattern) == pattern:
                    hit = True
            elif pattern.startswith("!"):
                if _glob(name, pattern[1:].lower()):
                    return False
            elif _glob(name, pattern.lower()):
                hit = True
        return hit

    def lookup(self, name: str) -> list[_KnownKey]:
        return [e for e in self.entries if not e.revoked and self.matches(name, e.patterns)]

    def revoked(self, name: str, key: paramiko.PKey) -> _KnownKey | None:
        for e in self.entries:
            if e.revoked and _same_key(e.key, key) and self.matches(name, e.patterns):
                return e
        return None


def _glob(name: str, pattern: str) -> bool:
    """OpenSSH host patterns: only ``*`` and ``?`` are special (``[`` is literal, as in
    ``[host]:port``)."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, flags=re.S) is not None


def _same_key(a: paramiko.PKey, b: paramiko.PKey) -> bool:
    return a.get_name() == b.get_name() and a.asbytes() == b.asbytes()


_KNOWN_HOSTS_WRITE = threading.Lock()


def record_host_key(path: Path, name: str, key: paramiko.PKey) -> None:
    """Append a hashed known_hosts entry (directory 0700, file 0600 when created)."""
    from paramiko.hostkeys import HostKeys

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    line = f"{HostKeys.hash_host(name)} {key.get_name()} {key.get_base64()}\n"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        if size:
            f.seek(size - 1)
            if f.read(1) != b"\n":
                line = "\n" + line
        f.write(line.encode())


# --------------------------------------------------------------------------- paramiko glue


def _paramiko(device: str) -> Any:
    try:
        import paramiko
    except ImportError as e:
        raise TransportError(
            f"the ssh transport needs paramiko, which is not installed ({e})", device=device
        ) from None
    quiet = logging.getLogger("paramiko")
    if quiet.level == logging.NOTSET:
        quiet.setLevel(logging.CRITICAL)
    return paramiko


class _HostKeyCheck:
    """paramiko's missing-host-key hook. The SSHClient is given no host keys of its own,
    so every connection comes here and the whole decision is ours."""

    def __init__(self, owner: SSHTransport, target: SSHTarget, role: str) -> None:
        self.owner = owner
        self.target = target
        self.role = role

    def missing_host_key(self, client: Any, hostname: str, key: paramiko.PKey) -> None:
        self.owner._verify_host_key(self.target, key, self.role)


def _tune_socket(sock: socket.socket, keepalive_s: float) -> None:
    idle = max(1, int(keepalive_s))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, idle)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
        if hasattr(socket, "TCP_USER_TIMEOUT"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 3 * idle * 1000)
    except OSError:
        pass  # best effort: the SSH keepalives and read timeouts still apply


def _reason(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


# --------------------------------------------------------------------------- processes


class SSHProcess(Stream):
    """A command running on the device over one exec channel; see the module doc for how
    its pid (= process group id) is learnt and how terminate() uses it."""

    def __init__(
        self, owner: SSHTransport, channel: Any, stdout: IO[bytes], pid: int, argv: list[str]
    ) -> None:
        self._owner = owner
        self._chan = channel
        self.pid = pid
        self.argv = argv
        self._terminated = False
        self._start_readers(stdout, channel.makefile_stderr("rb"))

    def write_line(self, line: str) -> None:
        data = line.encode() + b"\n"
        offset = 0
        deadline = time.monotonic() + _STALL_S
        while offset < len(data):
            self._check_writable()
            if self._chan.send_ready():
                try:
                    sent = self._chan.send(data[offset : offset + 32768])
                except (OSError, EOFError) as e:
                    self._check_writable()
                    raise TransportError(
                        f"cannot write to {self.argv[0]} over ssh: {_reason(e)}",
                        device=self._owner.device.name,
                    ) from None
                offset += sent
                deadline = time.monotonic() + _STALL_S
            elif time.monotonic() > deadline:
                raise TransportTimeout(
                    f"{self.argv[0]} has not read its input for {_STALL_S:g} s",
                    device=self._owner.device.name,
                )
            else:
                time.sleep(0.005)

    def _check_writable(self) -> None:
        if not self._owner._connection_alive(self._chan):
            raise self._owner._lost(f"while writing to {self.argv[0]}", self._chan)
        if self._chan.closed or self._chan.exit_status_ready():
            code = self._chan.exit_status if self._chan.exit_status_ready() else None
            raise TransportError(
                f"{self.argv[0]} is gone (exit {code}): {self.stderr_tail()[-500:]}",
                device=self._owner.device.name,
            )

    def read_line(self, timeout: float) -> str | None:
        line = super().read_line(timeout)
        if line is None and not self._terminated:
            # End of stream: either the command exited, or the connection went away
            # (then no exit status ever comes, and the transport is no longer active).
            self._chan.status_event.wait(2.0)
            if self._chan.exit_status == -1 and not self._owner._connection_alive(self._chan):
                raise self._owner._lost(f"while {self.argv[0]} was running", self._chan)
        return line

    def terminate(self) -> None:
        if self._terminated:
            return
        self._terminated = True
        self._owner._forget(self)
        if not self._chan.exit_status_ready():
            self._owner._kill_group(self.pid)
            self._chan.status_event.wait(2.0)  # sshd reports the exit once the group is dead
        try:
            self._chan.close()
        except Exception:
            pass

    def wait(self, timeout: float) -> int | None:
        """Exit code; -1 when the command died from a signal or the connection was lost."""
        if self._chan.status_event.wait(timeout):
            return int(self._chan.exit_status)
        return None


# --------------------------------------------------------------------------- transport


class SSHOptions(DeviceOptions):
    """The options in the module doc; their values are checked again (and converted)
    by the transport, which also accepts them from Python callers."""

    identity_file: str | None = None
    known_hosts: str | None = None
    trust_on_first_use: bool | str = False
    proxy_jump: str | None = None
    connect_timeout: float | str | None = None
    keepalive_s: float | str | None = None


@register_transport("ssh")
class SSHTransport(PosixHost):
    """A device behind sshd; options and mechanisms are described in the module doc."""

    Options = SSHOptions

    def __init__(self, device: DeviceConfig, workspace: Path) -> None:
        super().__init__(device, workspace)
        opts = device.options
        try:
            self.target = parse_address(device.address or "")
            self.proxy_jump = parse_address(opts["proxy_jump"]) if opts.get("proxy_jump") else None
            self.trust_on_first_use = _as_bool(
                opts.get("trust_on_first_use", False), "trust_on_first_use"
            )
            self.connect_timeout = _as_seconds(opts.get("connect_timeout"), "connect_timeout", 10)
            self.keepalive_s = _as_seconds(opts.get("keepalive_s"), "keepalive_s", 15)
        except ValueError as e:
            raise TransportError(str(e), device=device.name) from None
        ident = opts.get("identity_file")
        self.identity_file = Path(os.path.expanduser(str(ident))) if ident else None
        self.known_hosts = Path(
            os.path.expanduser(str(opts.get("known_hosts") or DEFAULT_KNOWN_HOSTS))
        )
        self._lock = threading.RLock()
        self._client: Any = None
        self._gateway: Any = None
        self._sftp: Any = None
        self._workdir: str | None = None
        self._workdir_made = False
        self._hasher: str | None = None  # "sha256sum" or "python3" once known
        self._procs: set[SSHProcess] = set()
        self.connections_opened = 0  # how many times a connection was established
        self.files_copied = 0  # SFTP uploads done by _copy_to_device

    # ------------------------------------------------------------------ properties

    @property
    def workdir(self) -> str:
        if self._workdir is None:
            configured = str(self.device.options.get("workdir") or DEFAULT_WORKDIR)
            if configured.startswith("/"):
                self._workdir = posixpath.normpath(configured)
            else:
                rest = configured[2:] if configured.startswith("~/") else configured
                rest = "" if rest == "~" else rest
                done = self.run(["sh", "-c", "cd && pwd"], timeout=self.connect_timeout * 3)
                home = done.stdout.strip()
                if done.returncode != 0 or not home.startswith("/"):
                    raise TransportError(
                        f"cannot find the home directory on the device: "
                        f"{(done.stderr.strip() or home)[:200]!r}",
                        device=self.device.name,
                    )
                self._workdir = posixpath.normpath(posixpath.join(home, rest))
        return self._workdir

    # ------------------------------------------------------------------ connection

    def _err(self, message: str, timeout: bool = False) -> TransportError:
        cls = TransportTimeout if timeout else TransportError
        return cls(message, device=self.device.name)

    def _connection(self, reconnect: bool = True) -> Any:
        with self._lock:
            if self._client is not None:
                if self._connection_alive():
                    return self._client
                self._drop_connection()
            if not reconnect:
                raise self._err(f"not connected to {self.target}")
            self._client, self._gateway = self._connect()
            self.connections_opened += 1
            return self._client

    def _connection_alive(self, channel: Any = None) -> bool:
        client = self._client
        t = channel.get_transport() if channel is not None else None
        if t is None and client is not None:
            t = client.get_transport()
        return bool(t is not None and t.is_active())

    def _lost(self, when: str, channel: Any = None) -> TransportError:
        if channel is not None:
            t = channel.get_transport()
        else:
            t = self._client.get_transport() if self._client is not None else None
        cause = t.get_exception() if t is not None else None
        reason = f" ({_reason(cause)})" if cause is not None else ""
        return self._err(f"ssh connection to {self.target} lost {when}{reason}")

    def _drop_connection(self) -> None:
        sftp, client, gateway = self._sftp, self._client, self._gateway
        self._sftp = self._client = self._gateway = None
        for thing in (sftp, client, gateway):
            if thing is not None:
                try:
                    thing.close()
                except Exception:
                    pass

    def _connect(self) -> tuple[Any, Any]:
        _paramiko(self.device.name)  # fail early, and clearly, where paramiko is missing
        if self.identity_file is not None and not self.identity_file.is_file():
            raise self._err(f"identity file {self.identity_file} does not exist")
        gateway = None
        try:
            if self.proxy_jump is not None:
                gateway = self._login(self.proxy_jump, self._tcp(self.proxy_jump), "gateway")
                sock = self._tunnel(gateway, self.proxy_jump, self.target)
            else:
                sock = self._tcp(self.target)
            return self._login(self.target, sock, "device"), gateway
        except BaseException:
            if gateway is not None:
                gateway.close()
            raise

    def _tcp(self, target: SSHTarget) -> socket.socket:
        t = self.connect_timeout
        try:
            sock = socket.create_connection((target.host, target.port), timeout=t)
        except socket.gaierror as e:
            raise self._err(f"cannot resolve host name {target.host!r}: {e.strerror}") from None
        except ConnectionRefusedError:
            raise self._err(
                f"connection refused by {target.hostport} (is sshd running there?)"
            ) from None
        except TimeoutError:
            raise self._err(f"no answer from {target.hostport} within {t:g} s", True) from None
        except OSError as e:
            raise self._err(f"cannot connect to {target.hostport}: {e.strerror or e}") from None
        _tune_socket(sock, self.keepalive_s)
        return sock

    def _tunnel(self, gateway: Any, via: SSHTarget, target: SSHTarget) -> Any:
        paramiko = _paramiko(self.device.name)
        t = gateway.get_transport()
        try:
            return t.open_channel(
                "direct-tcpip",
                (target.host, target.port),
                ("127.0.0.1", 0),
                timeout=self.connect_timeout,
            )
        except paramiko.ChannelException as e:
            raise self._err(
                f"gateway {via} could not connect to {target.hostport}: {e.text} "
                "(is the device up, and is AllowTcpForwarding on at the gateway?)"
            ) from None
        except (paramiko.SSHException, EOFError, OSError) as e:
            raise self._err(
                f"gateway {via} could not open a tunnel to {target.hostport}: {_reason(e)}",
                "Timeout" in str(e),
            ) from None

    def _login(self, target: SSHTarget, sock: Any, role: str) -> Any:
        """SSH handshake, host key check and authentication over an open socket/channel."""
        paramiko = _paramiko(self.device.name)
        known_types = [
            e.key.get_name() for e in self._known_hosts().lookup(target.known_hosts_name)
        ]

        def make_transport(sock: Any, disabled_algorithms: Any = None) -> Any:
            t = paramiko.Transport(sock, disabled_algorithms=disabled_algorithms)
            if known_types:  # prefer the host key types already on record, as OpenSSH does
                opts = t.get_security_options()
                wanted: list[str] = []
                for kt in known_types:
                    wanted += ["rsa-sha2-512", "rsa-sha2-256", kt] if kt == "ssh-rsa" else [kt]
                have = list(opts.key_types)
                first = [k for k in dict.fromkeys(wanted) if k in have]
                opts.key_types = first + [k for k in have if k not in first]
            return t

        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(_HostKeyCheck(self, target, role))
        t = self.connect_timeout
        where = target if role == "device" else f"{target} (gateway)"
        try:
            client.connect(
                target.host,
                target.port,
                username=target.user,
                key_filename=str(self.identity_file) if self.identity_file else None,
                allow_agent=True,
                look_for_keys=self.identity_file is None,
                sock=sock,
                timeout=t,
                banner_timeout=t,
                auth_timeout=t,
                channel_timeout=t,
                transport_factory=make_transport,
            )
        except TransportError:
            client.close()
            raise
        except (paramiko.AuthenticationException, paramiko.SSHException) as e:
            client.close()
            text = str(e)
            if isinstance(e, paramiko.PasswordRequiredException):
                raise self._err(
                    f"authentication failed for {where}: the identity file is "
                    "passphrase-protected; load it into ssh-agent instead"
                ) from None
            if isinstance(e, paramiko.AuthenticationException) or (
                "No authentication methods" in text
            ):
                tried = ", ".join(
                    [f"identity file {self.identity_file}"] * bool(self.identity_file)
                    + ["ssh-agent"]
                    + ["~/.ssh/id_* keys"] * (self.identity_file is None)
                )
                raise self._err(
                    f"authentication failed for {where} (tried {tried}); is the public key "
                    "in the device's ~/.ssh/authorized_keys?"
                ) from None
            if "No existing session" in text or "banner" in text or "imeout" in text:
                raise self._err(
                    f"no SSH handshake from {where} within {t:g} s ({_reason(e)})", True
                ) from None
            raise self._err(f"SSH handshake with {where} failed: {_reason(e)}") from None
        except TimeoutError:
            client.close()
            raise self._err(f"{where} did not answer within {t:g} s", True) from None
        except (EOFError, OSError) as e:
            client.close()
            raise self._err(f"connection to {where} closed during login: {_reason(e)}") from None
        client.get_transport().set_keepalive(max(1, int(self.keepalive_s)))
        return client

    def _known_hosts(self) -> KnownHosts:
        return KnownHosts([self.known_hosts, Path(GLOBAL_KNOWN_HOSTS)])

    def _verify_host_key(self, target: SSHTarget, key: paramiko.PKey, role: str) -> None:
        name = target.known_hosts_name
        what = "host key" if role == "device" else "gateway host key"
        with _KNOWN_HOSTS_WRITE:  # so that concurrent TOFU connects record one entry
            known = self._known_hosts()
            revoked = known.revoked(name, key)
            if revoked is not None:
                raise self._err(
                    f"{what} for {name} ({_key_text(key)}) is marked @revoked in {revoked.source}"
                )
            entries = known.lookup(name)
            if any(_same_key(e.key, key) for e in entries):
                return
            if entries:
                was = "; ".join(f"{_key_text(e.key)} in {e.source}" for e in entries)
                raise self._err(
                    f"{what} for {name} changed: known {was}, but the server now presents "
                    f"{_key_text(key)}. Refusing to connect (also with trust_on_first_use). "
                    f"If the device was reinstalled, remove the old key with "
                    f"`ssh-keygen -R '{name}' -f {self.known_hosts}` and connect again"
                )
            if not self.trust_on_first_use:
                raise self._err(
                    f"{what} for {name} is not known: the server presents {key.get_name()} "
                    f"{fingerprint(key)}, which is not in {self.known_hosts}. If that is the "
                    "device's fingerprint, trust it with `edgebench device add ... "
                    "--trust-on-first-use` (option trust_on_first_use=true) or add it to "
                    "known_hosts with ssh-keyscan"
                )
            try:
                record_host_key(self.known_hosts, name, key)
            except OSError as e:
                raise self._err(
                    f"cannot record the {what} for {name} in {self.known_hosts}: {e.strerror or e}"
                ) from None
        log.warning(
            "%s: trusting new %s for %s (%s); recorded in %s",
            self.device.name,
            what,
            name,
            _key_text(key),
            self.known_hosts,
        )

    def _bounded(self, what: str, fn: Callable[[], _T], timeout: float | None = None) -> _T:
        """Run a paramiko call that has no timeout of its own; if the device does not
        answer in time the connection is closed (which also ends the call)."""
        limit = self.connect_timeout if timeout is None else timeout
        box: dict[str, Any] = {}

        def call() -> None:
            try:
                box["value"] = fn()
            except BaseException as e:  # handed to the caller's thread below
                box["error"] = e

        worker = threading.Thread(target=call, daemon=True)
        worker.start()
        worker.join(limit)
        if worker.is_alive():
            with self._lock:
                self._drop_connection()
            raise self._err(
                f"no answer from {self.target} within {limit:g} s while trying to {what}; "
                "connection closed",
                True,
            )
        if "error" in box:
            e = box["error"]
            if isinstance(e, TransportError):
                raise e
            if not self._connection_alive():
                raise self._lost(f"while trying to {what}")
            raise self._err(f"cannot {what}: {_reason(e)}", isinstance(e, TimeoutError))
        return box["value"]

    # ------------------------------------------------------------------ commands

    def _start(
        self, argv: list[str], cwd: str, reconnect: bool = True
    ) -> tuple[Any, IO[bytes], int]:
        """Open an exec channel running ``argv`` in its own process group; return the
        channel, its stdout (positioned after the pid line) and the pid/pgid."""
        if not argv or not all(isinstance(a, str) for a in argv):
            raise ValueError(f"argv must be a non-empty list of strings, not {argv!r}")
        client = self._connection(reconnect)
        command = shlex.join(["exec", "sh", "-c", WRAPPER, "sh", cwd, *argv])
        what = f"start {argv[0]}"

        def open_and_exec() -> Any:
            chan = client.get_transport().open_session(timeout=self.connect_timeout)
            chan.exec_command(command)
            return chan

        chan = self._bounded(what, open_and_exec)
        stdout = chan.makefile("rb")
        chan.settimeout(self.connect_timeout)
        preamble: list[bytes] = []
        try:
            while True:
                raw = stdout.readline()
                match = _PID_LINE.match(raw)
                if match:
                    pid = int(match.group(1))
                    break
                if not raw or len(preamble) >= _MAX_PREAMBLE_LINES:
                    chan.settimeout(2.0)
                    try:
                        err = chan.makefile_stderr("rb").read().decode("utf-8", "replace")
                    except (OSError, EOFError):
                        err = ""
                    chan.close()
                    if not raw and not self._connection_alive(chan):
                        raise self._lost(f"while starting {argv[0]}", chan)
                    shown = err.strip() or b"".join(preamble).decode("utf-8", "replace")
                    raise self._err(
                        f"cannot start {argv[0]}: the login shell did not run the command "
                        f"wrapper: {shown[-300:]!r}"
                    )
                preamble.append(raw)  # a chatty ~/.bashrc: not the command's output
        except TimeoutError:
            chan.close()
            raise self._err(
                f"{argv[0]} did not start within {self.connect_timeout:g} s", True
            ) from None
        chan.settimeout(None)
        return chan, stdout, pid

    def run(self, argv: list[str], timeout: float = 60.0) -> CommandResult:
        return self._run(argv, timeout)

    def _run(self, argv: list[str], timeout: float, reconnect: bool = True) -> CommandResult:
        deadline = time.monotonic() + timeout
        chan, stdout, pid = self._start(argv, ".", reconnect)
        chan.shutdown_write()  # stdin at EOF, so a command that reads it does not wait
        out: list[bytes] = []
        err: list[bytes] = []

        def drain(f: IO[bytes], into: list[bytes]) -> None:
            try:
                into.append(f.read())
            except (OSError, EOFError):
                pass

        readers = [
            threading.Thread(target=drain, args=(stdout, out), daemon=True),
            threading.Thread(target=drain, args=(chan.makefile_stderr("rb"), err), daemon=True),
        ]
        for r in readers:
            r.start()
        for r in readers:
            r.join(max(0.0, deadline - time.monotonic()))
        finished = not any(r.is_alive() for r in readers) and chan.status_event.wait(
            max(0.0, deadline - time.monotonic())
        )
        if not finished:
            alive = self._connection_alive(chan)
            if alive:
                self._kill_group(pid)
            chan.close()
            if not alive:
                raise self._lost(f"while running {argv[0]}", chan)
            raise self._err(
                f"{argv[0]} did not finish within {timeout:g} s; its process group was killed",
                True,
            )
        code = int(chan.exit_status)
        chan.close()
        if code == -1 and not self._connection_alive(chan):
            raise self._lost(f"while running {argv[0]}", chan)
        return CommandResult(
            list(argv),
            code,
            b"".join(out).decode("utf-8", "replace"),
            b"".join(err).decode("utf-8", "replace"),
        )

    def open_stream(self, argv: list[str]) -> Stream:
        workdir = self.workdir
        if not self._workdir_made:
            self._mkdir_p(workdir)
            self._workdir_made = True
        chan, stdout, pid = self._start(argv, workdir)
        proc = SSHProcess(self, chan, stdout, pid, list(argv))
        with self._lock:
            self._procs.add(proc)
        return proc

    def _forget(self, proc: SSHProcess) -> None:
        with self._lock:
            self._procs.discard(proc)

    def _kill_group(self, pgid: int) -> None:
        """SIGKILL a process group on the device over a separate channel; best effort,
        bounded by connect_timeout, never reconnects."""
        if not isinstance(pgid, int) or pgid <= 1:  # never kill -1 / -0
            return
        try:
            self._run(["sh", "-c", KILL_GROUP, "sh", str(pgid)], self.connect_timeout, False)
        except TransportError as e:
            log.debug("%s: could not kill process group %d: %s", self.device.name, pgid, e)

    def _mkdir_p(self, path: str) -> None:
        argv = ["mkdir", "-p", path]
        done = self.run(argv, timeout=self.connect_timeout * 3)
        if done.returncode != 0:
            raise CommandError(argv, done.returncode, done.stderr, device=self.device.name)

    # ------------------------------------------------------------------ files

    def remote_sha256(self, remote_path: str) -> str | None:
        if self._hasher != "python3":
            done = self.run(["sha256sum", remote_path], timeout=_HASH_TIMEOUT_S)
            if done.returncode == 0:
                self._hasher = "sha256sum"
                return _parse_digest(done.stdout)
            if done.returncode != 127 or self._hasher == "sha256sum":
                return None  # no such file (or unreadable)
            self._hasher = "python3"  # 127: no sha256sum on this device
        done = self.run(["python3", "-c", _PY_SHA256, remote_path], timeout=_HASH_TIMEOUT_S)
        if done.returncode == 127:
            raise self._err("the device has neither sha256sum nor python3 to hash files")
        return _parse_digest(done.stdout) if done.returncode == 0 else None

    def _sftp_client(self) -> Any:
        with self._lock:
            client = self._connection()
            if self._sftp is None:
                sftp = self._bounded("open an SFTP session", client.open_sftp)
                sftp.get_channel().settimeout(_SFTP_TIMEOUT_S)
                self._sftp = sftp
            return self._sftp

    def _copy_to_device(self, local: Path, remote_path: str) -> None:
        self._mkdir_p(posixpath.dirname(remote_path))
        tmp = f"{remote_path}.part-{uuid.uuid4().hex[:12]}"
        sftp = self._sftp_client()
        try:
            sftp.put(str(local), tmp, confirm=True)
            try:
                sftp.posix_rename(tmp, remote_path)  # atomic replace (OpenSSH extension)
            except OSError:
                try:
                    sftp.remove(remote_path)
                except OSError:
                    pass
                sftp.rename(tmp, remote_path)
        except Exception as e:
            alive = self._connection_alive()
            with self._lock:
                if self._sftp is sftp:
                    self._sftp = None
            try:
                if alive:
                    sftp.remove(tmp)
            except Exception:
                pass
            if isinstance(e, TransportError):
                raise
            if not alive:
                raise self._lost(f"while copying {local.name}") from None
            raise self._err(
                f"cannot copy {local.name} to {remote_path}: {_reason(e)}",
                isinstance(e, TimeoutError),
            ) from None
        self.files_copied += 1

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            try:
                proc.terminate()
            except Exception:
                pass
        with self._lock:
            self._procs.clear()
            self._drop_connection()


def _parse_digest(stdout: str) -> str | None:
    # sha256sum prefixes the line with a backslash when the file name has odd characters
    first = stdout.strip().split()[0].lstrip("\\") if stdout.strip() else ""
    return first.lower() if re.fullmatch(r"[0-9a-fA-F]{64}", first) else None

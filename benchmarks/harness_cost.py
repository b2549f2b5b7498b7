"""Shared pieces of the harness-cost benchmarks (issue 10: benchmarks/overhead.py and
benchmarks/scale.py): machine facts, the markdown section both print, targets judged
as met or missed, the `edgebench` command run in a throwaway workspace, real sshd
servers on loopback with devices registered against them, and a meter for one child
process (peak RSS, CPU seconds).

Nothing here asserts a time: the scripts print measurements.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.machine import cpu_model  # noqa: E402, F401  (re-exported)
from tests.conftest import EDGEBENCH, FAST_SUITE, Runner, make_runner  # noqa: E402
from tests.sshd import SSHLab, SSHServer  # noqa: E402

# The digits model exactly as the tests' FAST_SUITE builds it (its `models:` block), so
# the benchmarks measure the model the test suite and the demo use.
DIGITS_MODELS_BLOCK = "models:" + FAST_SUITE.split("models:", 1)[1].split("variants:", 1)[0]


# --------------------------------------------------------------------------- machine


def memory_total_bytes() -> int | None:
    return _meminfo_bytes("MemTotal")


def memory_available_bytes() -> int | None:
    return _meminfo_bytes("MemAvailable")


def _meminfo_bytes(key: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def machine_cpu_seconds() -> float | None:
    """CPU time the whole machine has spent busy (all cores, every process), from the
    first line of /proc/stat: everything but idle and iowait, in USER_HZ ticks."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    ticks = [int(v) for v in fields]
    # user nice system idle iowait irq softirq steal (guest time is inside user already)
    busy = sum(ticks[:8]) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


@dataclass
class Section:
    """One benchmark's markdown section and the raw numbers behind it."""

    title: str
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    load_before: tuple[float, float, float] = field(default_factory=load_average)
    load_after: tuple[float, float, float] | None = None
    command: str = field(default_factory=lambda: shlex.join(sys.orig_argv))
    blocks: list[str] = field(default_factory=list)  # markdown: tables, notes
    targets: list[Target] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def machine(self) -> dict[str, Any]:
        mem = memory_total_bytes()
        return {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "memory_bytes": mem,
            "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(),
            "host": platform.node(),
        }

    def finish(self) -> None:
        self.load_after = load_average()

    def markdown(self) -> str:
        m = self.machine()
        mem = f", {m['memory_bytes'] / 2**30:.1f} GiB RAM" if m["memory_bytes"] else ""
        after = self.load_after or load_average()
        lines = [
            f"### {self.title}",
            "",
            f"{self.started:%Y-%m-%d %H:%M} UTC; {m['cpu']}, {m['cores']} cores{mem},"
            f" {m['os']}, Python {m['python']}; load average (1/5/15 min)"
            f" {_load(self.load_before)} before, {_load(after)} after."
            f" Command: `{self.command}`",
            "",
        ]
        for block in self.blocks:
            lines += [block.rstrip("\n"), ""]
        lines += [t.line() for t in self.targets]
        return "\n".join(lines).rstrip("\n") + "\n"

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "date": self.started.isoformat(timespec="seconds"),
            "machine": self.machine(),
            "load_average_before": list(self.load_before),
            "load_average_after": list(self.load_after or load_average()),
            "command": self.command,
            "targets": [{**asdict(t), "met": t.met, "verdict": t.line()} for t in self.targets],
            "results": self.raw,
        }

    def write_json(self, path: Path | None) -> None:
        if path is not None:
            path.write_text(json.dumps(self.as_json(), indent=1, default=str) + "\n")


def _load(values: Sequence[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


@dataclass
class Target:
    """A figure against its limit: ``value`` must stay below ``limit`` (or at most
    ``limit`` with ``inclusive``). ``value`` None: not measured, and the line says why."""

    what: str
    value: float | None
    limit: float
    unit: str  # "ms", "MiB", "s", "MB", "bytes"
    inclusive: bool = False
    note: str = ""  # how the value was obtained, when it is not a plain measurement

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value <= self.limit if self.inclusive else self.value < self.limit

    def line(self) -> str:
        bound = "at most" if self.inclusive else "under"
        head = f"- target: {self.what} {bound} {_num(self.limit)} {self.unit}:"
        note = f"; {self.note}" if self.note else ""
        if self.value is None:
            return f"{head} **not measured**" + (f" ({self.note})" if self.note else "")
        if self.met:
            return f"{head} **met** ({_num(self.value)} {self.unit}{note})"
        over = self.value - self.limit
        ratio = f", {self.value / self.limit:.1f}x the limit" if self.limit else ""
        return (
            f"{head} **missed** by {_num(over)} {self.unit}"
            f" ({_num(self.value)} {self.unit}{ratio}{note})"
        )


def _num(v: float) -> str:
    if float(v).is_integer():
        return f"{int(v):,}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def mib(n: float | None) -> str:
    return "-" if n is None else f"{n / 2**20:,.1f} MiB"


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:,.0f} ms"


# --------------------------------------------------------------------------- edgebench


@dataclass
class Workspace:
    """A throwaway EDGEBENCH_HOME with its own SQLite database (tests/conftest.py's
    make_runner): ``eb(*args)`` runs the `edgebench` console script there."""

    root: Path
    db_path: Path | None = None

    def __post_init__(self) -> None:
        self.home = self.root / "home"
        self.root.mkdir(parents=True, exist_ok=True)
        self.eb: Runner = make_runner(self.home, self.root)
        if self.db_path is not None:
            self.eb.env["EDGEBENCH_DB"] = f"sqlite:///{self.db_path}"  # type: ignore[attr-defined]

    @property
    def env(self) -> dict[str, str]:
        return self.eb.env  # type: ignore[attr-defined,no-any-return]

    @property
    def db_url(self) -> str:
        return self.env["EDGEBENCH_DB"]

    def timed(self, *args: str, timeout: float = 600) -> tuple[float, subprocess.CompletedProcess]:
        """Run `edgebench ARGS`; (wall seconds, the finished process). Fails loudly on a
        non-zero exit: a benchmark of a failing command measures nothing."""
        start = time.perf_counter()
        done = self.eb(*args, timeout=timeout)
        return time.perf_counter() - start, done

    def build_variants(self, suite: Path) -> list[dict[str, Any]]:
        """`edgebench variants SUITE --json`: build (or find) the suite's variants."""
        done = self.eb("variants", str(suite), "--json", timeout=900)
        return json.loads(done.stdout)  # type: ignore[no-any-return]


def edgebench_argv(*args: str) -> list[str]:
    return [EDGEBENCH, *args]


def build_digits_fp32_onnx(ws: Workspace) -> Path:
    """The digits CNN exported to ONNX by the `digits_cnn` builder (trained, seeded),
    copied out of the artifact cache: the fp32 model both benchmarks start from."""
    suite = ws.root / "build-digits.yaml"
    suite.write_text(
        f"name: digits-build\n{DIGITS_MODELS_BLOCK}variants:\n"
        "  - name: fp32-onnx\n    recipe: [export_onnx]\n"
        "settings:\n  - runtime: onnxruntime\n    threads: [1]\n"
    )
    (built,) = ws.build_variants(suite)
    out = ws.root / "digits_cnn_fp32.onnx"
    out.write_bytes(Path(built["path"]).read_bytes())
    return out


# --------------------------------------------------------------------------- ssh


@dataclass
class SSHBoards:
    """Real OpenSSH servers on loopback (tests/sshd.py) and the known_hosts file that
    names their host keys, so every device registered against them is verified."""

    lab: SSHLab
    servers: list[SSHServer]
    known_hosts: Path

    @classmethod
    def start(cls, root: Path, count: int = 1) -> SSHBoards:
        root.mkdir(parents=True, exist_ok=True)
        lab = SSHLab(root, mode="loopback")
        try:
            servers = [lab.server(f"board{i}") for i in range(count)]
        except BaseException:
            lab.close()
            raise
        known_hosts = root / "known_hosts"
        known_hosts.write_text("".join(s.known_hosts_line() for s in servers))
        return cls(lab, servers, known_hosts)

    def add_device(
        self, ws: Workspace, name: str, server: SSHServer, workdir: Path, *tags: str
    ) -> None:
        """`edgebench device add NAME --transport ssh ...` as tests/test_ssh_run.py does:
        key login, host key checked against known_hosts (no trust on first use), the
        agent under this interpreter (the runtimes are in this venv)."""
        tag_args = [a for t in tags for a in ("--tag", t)]
        ws.eb(
            "device", "add", name,
            "--transport", "ssh",
            "--host", server.address,
            "--identity", str(self.lab.client_key),
            "--python", sys.executable,
            "--option", f"known_hosts={self.known_hosts}",
            "--option", f"workdir={workdir}",
            "--option", "connect_timeout=30",
            *tag_args,
        )  # fmt: skip

    def close(self) -> None:
        self.lab.close()


def login_shell_seconds(repeats: int = 5) -> float | None:
    """What the login shell alone costs per remote command on these loopback boards:
    bash run as sshd runs it (SSH_CLIENT set, so it reads ~/.bashrc) minus bash run
    plainly. Every remote command pays this once; on this VM ~/.bashrc runs pyenv."""
    shell = os.environ.get("SHELL") or "/bin/bash"
    if not Path(shell).name.endswith("bash"):
        return None
    base = {"HOME": str(Path.home()), "PATH": "/usr/bin:/bin", "SHLVL": "0"}

    def per_call(env: dict[str, str]) -> float:
        start = time.perf_counter()
        for _ in range(repeats):
            subprocess.run([shell, "-c", "true"], env=env, check=False)
        return (time.perf_counter() - start) / repeats

    as_sshd = per_call({**base, "SSH_CLIENT": "127.0.0.1 40000 22"})
    plain = per_call(base)
    return max(0.0, as_sshd - plain)


# --------------------------------------------------------------------------- a child's cost


@dataclass
class ProcessCost:
    wall_s: float
    returncode: int
    user_s: float
    sys_s: float
    maxrss_bytes: int  # getrusage of the child (wait4): its peak, and its waited-for children
    vmhwm_bytes: int | None  # /proc/PID/status VmHWM, last poll before exit: the process alone
    rss_samples: list[tuple[float, int]]  # (seconds since start, VmRSS bytes), polled
    machine_cpu_s: float | None  # the whole machine's busy CPU over the same wall time
    stdout: str
    stderr: str
    timed_out: bool = False  # killed at ``timeout``: wall_s is then a lower bound

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s


def measure_process(
    argv: list[str], *, env: dict[str, str], cwd: Path, poll_s: float = 0.1, timeout: float = 600
) -> ProcessCost:
    """Run ``argv`` and measure that one process: CPU seconds and peak RSS from
    ``os.wait4`` (the kernel's rusage of exactly this child), VmHWM/VmRSS polled from
    /proc/PID/status while it runs, and the machine's total busy CPU meanwhile."""
    out_path, err_path = cwd / f".out-{time.monotonic_ns()}", cwd / f".err-{time.monotonic_ns()}"
    machine_before = machine_cpu_seconds()
    start = time.perf_counter()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err)
    status = Path(f"/proc/{proc.pid}/status")
    samples: list[tuple[float, int]] = []
    vmhwm: list[int] = []
    stop = threading.Event()

    def poll() -> None:
        # Reads /proc until the process is reaped; a read may race with its exit.
        while not stop.is_set():
            try:
                text = status.read_text()
            except OSError:
                return
            fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
            if "VmHWM" in fields:  # a zombie has no memory lines
                vmhwm.append(int(fields["VmHWM"].split()[0]) * 1024)
                samples.append(
                    (time.perf_counter() - start, int(fields["VmRSS"].split()[0]) * 1024)
                )
            stop.wait(poll_s)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        proc.kill()

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        # wait4 rather than Popen.wait: it hands back this child's own rusage.
        _, wait_status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
        stop.set()
        poller.join()
    wall = time.perf_counter() - start
    machine_after = machine_cpu_seconds()
    proc.returncode = os.waitstatus_to_exitcode(wait_status)  # Popen must not reap it again
    stdout = out_path.read_text(errors="replace")
    stderr = err_path.read_text(errors="replace")
    out_path.unlink()
    err_path.unlink()
    return ProcessCost(
        wall_s=wall,
        returncode=proc.returncode,
        user_s=usage.ru_utime,
        sys_s=usage.ru_stime,
        maxrss_bytes=usage.ru_maxrss * 1024,  # Linux: KiB
        vmhwm_bytes=max(vmhwm) if vmhwm else None,
        rss_samples=samples,
        machine_cpu_s=(
            machine_after - machine_before
            if machine_before is not None and machine_after is not None
            else None
        ),
        stdout=stdout,
        stderr=stderr,
        timed_out=killed.is_set(),
    )


def median(values: Sequence[float]) -> float | None:
    """Nearest-rank median (harness/stats.py's convention: the ceil(n/2)-th smallest);
    None if empty."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[-(-len(ordered) // 2) - 1]

"""The emulated phone behind :mod:`devices.emulators.adbd`: files, properties, physics.

**Sandbox.** The phone's file system is a directory on the host (a temp dir or one
given): ``/data/local/tmp``, ``/sdcard``, ``/system/bin`` (host tools linked in,
plus the stand-ins :mod:`~devices.emulators.phone_tools`,
:mod:`~devices.emulators.benchmark_model_standin` and
:mod:`~devices.emulators.ort_perf_test_standin`), ``/proc/{cpuinfo,meminfo}``,
``/sys/class/power_supply/battery``, ``/sys/class/thermal``,
``/sys/devices/system/cpu``. Shell commands run **on the host**, ``/bin/sh -c`` with
the sandbox as ``/``; three fences keep them in it:

1. *Path rewriting* (:meth:`PhoneSandbox.rewrite_command`): every absolute path a
   command line names becomes the same path under the sandbox, normalised first so
   that ``/../../etc/passwd`` is the sandbox's ``/etc/passwd``; a relative word that
   climbs above its start (``../..``) is resolved against ``/`` (adbd's working
   directory) and clamped the same way. Exceptions, passed through: the ``/dev``
   character devices a shell needs (``/dev/null`` ...), and ``/proc`` entries other
   than ``cpuinfo``/``meminfo``/``version`` (``/proc/self/status`` is the caller's
   own). A path already under the sandbox is left as it is, so that paths the device
   printed can be used again.
2. *A guarded ``cd``*: the command runs after a prelude that defines ``cd`` (a
   function around the builtin) to refuse a directory outside the sandbox, and
   ``pwd`` to print the device path. ``PATH`` holds only the sandbox's bin
   directories, so only the linked tools (:data:`HOST_TOOLS`) are found.
3. *Landlock* (:mod:`~devices.emulators.landlock_exec`), where the kernel has it: the
   shell and all it starts may write only in the sandbox and read only the sandbox,
   the host's program trees (``/usr``, ``/bin``, ``/lib``..., the Python that runs the
   stand-ins), ``/proc`` and ``/sys``; no TCP, no signals out of the domain.

(1) and (2) stop the paths a command *names*, which is what the tests check on every
host; (3) also stops what a hostile command could compute (``$(printf /etc)``).
Without Landlock (property ``edgebench.sandbox=paths``) the fence is (1)+(2) only:
good against mistakes, not a security boundary against hostile commands.

What the device prints has the sandbox prefix removed again
(:class:`OutputTranslator`), so ``pwd`` says ``/data/local/tmp`` and ``sha256sum``
names the device path.

**Simulation** (:class:`PhoneSimulation`): a 4500 mAh battery discharging by the
current the phone draws (idle 180 mA + 450 mA per shell command running, up to
four), or charging at 1.5 A when charging is on; voltage from a linear OCV curve
minus an IR drop; CPU/battery/skin thermal zones warming towards a target set by
the load with first-order lags. ``current_now`` is in µA with **the
BatteryManager / Pixel convention: negative while discharging, positive while
charging** (some vendors' kernels report the opposite sign; the property
``edgebench.battery.current_sign`` says which one this phone uses). ``time_scale``
speeds the clock of the simulation (not of the benchmarks) for tests.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from devices.emulators import landlock_exec

LITTLE_CPUS = (0, 1, 2, 3)
BIG_CPUS = (4, 5, 6, 7)
LITTLE_MAX_KHZ = 1_800_000
BIG_MAX_KHZ = 2_400_000
CPU_COUNT = len(LITTLE_CPUS) + len(BIG_CPUS)
MEM_TOTAL_KIB = 7_812_500  # an "8 GB" phone

DEFAULT_PROPS: dict[str, str] = {
    "edgebench.emulated": "1",
    "edgebench.battery.current_sign": "negative-discharging",
    "ro.product.model": "edgebench emulated phone",
    "ro.product.name": "edgebench_emu",
    "ro.product.device": "edgebench_emu",
    "ro.product.brand": "edgebench",
    "ro.product.manufacturer": "edgebench",
    "ro.product.board": "emu8",
    "ro.board.platform": "emu8",
    "ro.soc.manufacturer": "edgebench",
    "ro.soc.model": "EMU8 (emulated, 4x1.8 GHz + 4x2.4 GHz)",
    "ro.hardware": "emu8",
    "ro.product.cpu.abi": "arm64-v8a",
    "ro.product.cpu.abilist": "arm64-v8a,armeabi-v7a,armeabi",
    "ro.product.cpu.abilist64": "arm64-v8a",
    "ro.build.version.release": "14",
    "ro.build.version.sdk": "34",
    "ro.build.version.security_patch": "2024-06-05",
    "ro.build.type": "userdebug",
    "ro.build.id": "EDGEBENCH.EMU.1",
    "ro.build.fingerprint": (
        "edgebench/edgebench_emu/edgebench_emu:14/EDGEBENCH.EMU.1/1:userdebug/test-keys"
    ),
    "ro.serialno": "EDGEBENCH-EMU",
    "ro.debuggable": "1",
    "ro.adb.secure": "1",
    "sys.boot_completed": "1",
    "persist.sys.timezone": "Etc/UTC",
    "service.adb.tcp.port": "5555",
}

# Host programs linked into the device's /system/bin (toybox's everyday set).
HOST_TOOLS = (
    "sh", "cat", "ls", "sha256sum", "md5sum", "mkdir", "rm", "rmdir", "chmod", "echo",
    "cp", "mv", "ln", "touch", "stat", "head", "tail", "wc", "grep", "sed", "awk", "cut",
    "sort", "uniq", "tr", "tee", "sleep", "date", "true", "false", "printf", "test",
    "env", "dirname", "basename", "readlink", "realpath", "find", "xargs", "du", "df",
    "uname", "seq", "expr", "timeout", "dd", "which", "yes", "cmp", "diff", "gzip",
    "tar", "od", "xxd", "ps", "kill", "nice", "time", "mktemp", "sync",
)  # fmt: skip
TOOL_COMMANDS = ("getprop", "setprop", "dumpsys", "taskset", "id", "nproc")
# Character devices a shell needs; /dev paths are passed through only for these.
DEV_PASSTHROUGH = (
    "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty",
    "/dev/stdin", "/dev/stdout", "/dev/stderr", "/dev/fd",
)  # fmt: skip
PROC_EMULATED = ("/proc/cpuinfo", "/proc/meminfo", "/proc/version")
# Host trees the confined shell may read and execute (programs and their libraries).
HOST_READ_TREES = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32", "/proc", "/sys")
HOST_READ_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/etc/nsswitch.conf")
HOST_RW_FILES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty")

# A sandbox path goes into command lines unquoted: keep it to characters that need none.
_SAFE_ROOT = re.compile(r"^/[A-Za-z0-9_./+-]+$")
# A word starts at the line's start, after blanks, operators, quotes, `=` or `:`
# (PATH-like lists); it runs to the next character that ends a shell word.
_WORD = re.compile(r"(^|[\s=<>|;&(`'\":])([^\s=:'\"`;&|<>()$\\]+)")

SHELL_PRELUDE = """\
cd() { command cd "$@" || return; case "$PWD/" in "$EDGEBENCH_SANDBOX"/*) ;; \
*) command cd "$EDGEBENCH_SANDBOX"; echo "cd: permission denied: outside the emulated phone" >&2; \
return 1;; esac; }
pwd() { case "$PWD" in "$EDGEBENCH_SANDBOX") echo /;; \
*) echo "${PWD#"$EDGEBENCH_SANDBOX"}";; esac; }
"""


@dataclass
class ThermalZone:
    """One /sys/class/thermal/thermal_zoneN: warms towards its load target."""

    type: str
    idle_rise_c: float  # above ambient when idle
    rise_per_load_c: float  # per busy command (up to 4)
    tau_s: float  # first-order time constant
    temp_c: float = 0.0


@dataclass
class PhoneSimulation:
    """Battery and thermal physics (see the module doc); thread-safe."""

    design_capacity_mah: float = 4500.0
    level: float = 0.85  # state of charge, 0..1
    ambient_c: float = 27.0
    time_scale: float = 1.0
    charging: bool = False
    idle_ma: float = 180.0
    per_load_ma: float = 450.0
    charge_ma: float = 1500.0
    internal_ohm: float = 0.12
    clock: Callable[[], float] = time.monotonic
    load: int = 0
    current_ua: int = 0
    zones: list[ThermalZone] = field(
        default_factory=lambda: [
            ThermalZone("cpu-little", 4.0, 5.0, 6.0),
            ThermalZone("cpu-big", 5.0, 9.0, 5.0),
            ThermalZone("battery", 2.0, 2.0, 60.0),
            ThermalZone("skin-therm", 1.5, 2.5, 45.0),
        ]
    )

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._last = self.clock()
        for zone in self.zones:
            zone.temp_c = self.ambient_c + zone.idle_rise_c
        self.current_ua = self._current_ua()

    def _current_ua(self) -> int:
        """Net battery current in µA: positive = into the battery (charging)."""
        draw_ma = self.idle_ma + self.per_load_ma * min(self.load, 4)
        if self.charging:
            net_ma = self.charge_ma - draw_ma if self.level < 1.0 else 0.0
        else:
            net_ma = -draw_ma
        return int(net_ma * 1000)

    def set_charging(self, on: bool) -> None:
        with self._lock:
            self._advance()
            self.charging = on

    def add_load(self, delta: int) -> None:
        with self._lock:
            self._advance()
            self.load = max(0, self.load + delta)

    def _advance(self) -> None:
        now = self.clock()
        dt = max(0.0, now - self._last) * self.time_scale
        self._last = now
        self.current_ua = self._current_ua()
        # Coulomb counting: µA * s -> mAh.
        self.level += self.current_ua / 1000.0 * dt / 3600.0 / self.design_capacity_mah
        self.level = min(1.0, max(0.0, self.level))
        busy = min(self.load, 4)
        for zone in self.zones:
            target = self.ambient_c + zone.idle_rise_c + zone.rise_per_load_c * busy
            zone.temp_c = target + (zone.temp_c - target) * pow(2.718281828, -dt / zone.tau_s)

    def snapshot(self) -> dict[str, str]:
        """The sysfs files (path under the sandbox -> content) for the state now."""
        with self._lock:
            self._advance()
            percent = round(self.level * 100)
            if self.charging:
                status = "Full" if percent >= 100 else "Charging"
            else:
                status = "Discharging"
            ocv_v = 3.45 + 0.75 * self.level
            volts = ocv_v + self.current_ua / 1e6 * self.internal_ohm
            battery_c = next(z.temp_c for z in self.zones if z.type == "battery")
            base = "sys/class/power_supply/battery/"
            files = {
                base + "capacity": str(percent),
                base + "status": status,
                base + "current_now": str(self.current_ua),
                base + "voltage_now": str(int(volts * 1e6)),
                base + "temp": str(int(battery_c * 10)),
                base + "charge_counter": str(int(self.level * self.design_capacity_mah * 1000)),
                "sys/class/power_supply/usb/online": "1" if self.charging else "0",
            }
            for index, zone in enumerate(self.zones):
                files[f"sys/class/thermal/thermal_zone{index}/temp"] = str(int(zone.temp_c * 1000))
            return files


def _cpuinfo() -> str:
    blocks = []
    for cpu in range(CPU_COUNT):
        part = "0xd05" if cpu in LITTLE_CPUS else "0xd0b"  # Cortex-A55 / Cortex-A76
        blocks.append(
            f"processor\t: {cpu}\nBogoMIPS\t: 38.40\n"
            "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp "
            "cpuid asimdrdm lrcpc dcpop asimddp\n"
            "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x1\n"
            f"CPU part\t: {part}\nCPU revision\t: 0\n"
        )
    return "\n".join(blocks) + "\nHardware\t: edgebench EMU8 (emulated)\n"


def _meminfo() -> str:
    free = MEM_TOTAL_KIB // 5
    lines = {
        "MemTotal": MEM_TOTAL_KIB,
        "MemFree": free,
        "MemAvailable": MEM_TOTAL_KIB // 2,
        "Buffers": 8_192,
        "Cached": MEM_TOTAL_KIB // 4,
        "SwapCached": 0,
        "Active": MEM_TOTAL_KIB // 4,
        "Inactive": MEM_TOTAL_KIB // 5,
        "SwapTotal": 4_194_300,
        "SwapFree": 4_194_300,
        "Shmem": 65_536,
    }
    return "".join(f"{key + ':':<16}{value:>8} kB\n" for key, value in lines.items())


class OutputTranslator:
    """Removes the sandbox prefix from a byte stream, across chunk boundaries."""

    def __init__(self, root: str) -> None:
        self._prefix = root.encode()
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data = (self._pending + chunk).replace(self._prefix, b"")
        # Hold back a tail that may be the start of the prefix cut by the chunk end.
        keep = 0
        for size in range(min(len(self._prefix) - 1, len(data)), 0, -1):
            if self._prefix.startswith(data[-size:]):
                keep = size
                break
        self._pending = data[len(data) - keep :] if keep else b""
        return data[: len(data) - keep] if keep else data

    def flush(self) -> bytes:
        data, self._pending = self._pending, b""
        return data


class PhoneSandbox:
    """The phone's file system on the host and how device commands run in it."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        props: dict[str, str] | None = None,
        simulation: PhoneSimulation | None = None,
        use_landlock: bool | None = None,
    ) -> None:
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        if root is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="edgebench-phone-")
            root = Path(self._tempdir.name)
        self.root = Path(os.path.realpath(root))
        if not _SAFE_ROOT.match(str(self.root)):
            raise ValueError(f"sandbox path {str(self.root)!r} has characters a shell would split")
        self.simulation = simulation or PhoneSimulation()
        abi = landlock_exec.abi_version() if use_landlock is not False else 0
        if use_landlock and abi < 1:
            raise OSError("Landlock was asked for but this kernel does not have it")
        self.landlock_abi = abi
        self.props = {**DEFAULT_PROPS, **(props or {})}
        self.props["edgebench.sandbox"] = "landlock" if abi else "paths"
        self._build()
        self.refresh()

    # -- layout -------------------------------------------------------------------

    def _write(self, device_path: str, content: str, mode: int = 0o644) -> None:
        path = self.root / device_path.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(content)
        tmp.chmod(mode)
        os.replace(tmp, path)  # a reader never sees half a file

    def _build(self) -> None:
        for directory in (
            "data/local/tmp", "sdcard/Download", "storage/emulated/0", "system/bin",
            "system/xbin", "system/etc", "vendor/bin", "vendor/lib64", "etc", "mnt", "dev",
            "sys/class/power_supply/usb",
        ):  # fmt: skip
            (self.root / directory).mkdir(parents=True, exist_ok=True)
        (self.root / "data/local/tmp").chmod(0o771)
        bin_dir = self.root / "system/bin"
        for tool in HOST_TOOLS:
            host = shutil.which(tool, path="/usr/local/bin:/usr/bin:/bin")
            link = bin_dir / tool
            if host and not link.exists():
                link.symlink_to(host)
        here = Path(__file__).resolve().parent
        python = sys.executable
        tools = (here / "phone_tools.py").read_text()
        self._write("/system/bin/edgebench-tools", f"#!{python} -IS\n{tools}", 0o755)
        for name in TOOL_COMMANDS:
            link = bin_dir / name
            if not link.is_symlink():
                link.symlink_to("edgebench-tools")
        standin = (here / "benchmark_model_standin.py").read_text()
        self._write("/system/bin/benchmark_model", f"#!{python} -I\n{standin}", 0o755)
        ort_standin = (here / "ort_perf_test_standin.py").read_text()
        self._write("/system/bin/onnxruntime_perf_test", f"#!{python} -I\n{ort_standin}", 0o755)
        self._write(
            "/system/etc/edgebench-device.json",
            json.dumps({"props": self.props, "cpus": CPU_COUNT}, indent=1),
        )
        self._write("/proc/cpuinfo", _cpuinfo(), 0o444)
        self._write("/proc/meminfo", _meminfo(), 0o444)
        self._write(
            "/proc/version",
            "Linux version 6.1.0-edgebench-emu (emulated phone) #1 SMP PREEMPT\n",
            0o444,
        )
        cpus = f"0-{CPU_COUNT - 1}\n"
        for name in ("online", "possible", "present"):
            self._write(f"/sys/devices/system/cpu/{name}", cpus, 0o444)
        for cpu in range(CPU_COUNT):
            khz = LITTLE_MAX_KHZ if cpu in LITTLE_CPUS else BIG_MAX_KHZ
            policy = 0 if cpu in LITTLE_CPUS else BIG_CPUS[0]
            base = f"/sys/devices/system/cpu/cpu{cpu}/cpufreq/"
            self._write(base + "cpuinfo_max_freq", f"{khz}\n", 0o444)
            self._write(base + "cpuinfo_min_freq", "300000\n", 0o444)
            self._write(base + "scaling_max_freq", f"{khz}\n")
            self._write(base + "scaling_cur_freq", f"{khz}\n", 0o444)
            self._write(base + "scaling_governor", "schedutil\n")
            related = " ".join(str(c) for c in (LITTLE_CPUS if policy == 0 else BIG_CPUS))
            self._write(base + "related_cpus", related + "\n", 0o444)
        battery = "/sys/class/power_supply/battery/"
        self._write(battery + "present", "1\n", 0o444)
        self._write(battery + "health", "Good\n", 0o444)
        self._write(battery + "technology", "Li-ion\n", 0o444)
        self._write(battery + "type", "Battery\n", 0o444)
        design_uah = int(self.simulation.design_capacity_mah * 1000)
        self._write(battery + "charge_full_design", f"{design_uah}\n", 0o444)
        for index, zone in enumerate(self.simulation.zones):
            self._write(f"/sys/class/thermal/thermal_zone{index}/type", zone.type + "\n", 0o444)

    def refresh(self) -> None:
        """Write the simulation's current state into the sysfs files."""
        for path, content in self.simulation.snapshot().items():
            self._write("/" + path, content + "\n", 0o444)

    def cleanup(self) -> None:
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    # -- paths --------------------------------------------------------------------

    def _inside(self, host: str) -> bool:
        root = str(self.root)
        return host == root or host.startswith(root + "/")

    def device_to_host(self, device_path: str) -> str:
        """The host path of an absolute device path, kept inside the sandbox."""
        if self._inside(device_path):  # printed by the device, used again
            device_path = device_path[len(str(self.root)) :] or "/"
        normal = posixpath.normpath("/" + device_path.lstrip("/"))  # clamps leading ..
        return str(self.root) if normal == "/" else str(self.root) + normal

    def _map_word(self, word: str) -> str:
        if word.startswith("/"):
            normal = posixpath.normpath("/" + word.lstrip("/"))
            if self._inside(word):
                return self.device_to_host(word)
            if any(normal == p or normal.startswith(p + "/") for p in DEV_PASSTHROUGH):
                return word
            if normal.startswith("/proc/") and normal not in PROC_EMULATED:
                return word  # the process's own /proc (see the module doc)
            mapped = self.device_to_host(word)
            return mapped + "/" if word.endswith("/") and not mapped.endswith("/") else mapped
        if ".." in word.split("/") and posixpath.normpath(word).startswith(".."):
            return self.device_to_host(word)  # climbs above its start: clamp against /
        return word

    def rewrite_command(self, command: str) -> str:
        """The command line with device paths made sandbox paths (see the module doc)."""
        return _WORD.sub(lambda m: m.group(1) + self._map_word(m.group(2)), command)

    # -- processes ----------------------------------------------------------------

    def environment(self, term: str | None = None) -> dict[str, str]:
        root = str(self.root)
        env = {
            "PATH": f"{root}/system/bin:{root}/system/xbin:{root}/vendor/bin",
            "HOME": root,
            "TMPDIR": f"{root}/data/local/tmp",
            "ANDROID_DATA": f"{root}/data",
            "ANDROID_ROOT": f"{root}/system",
            "EXTERNAL_STORAGE": f"{root}/sdcard",
            "EDGEBENCH_SANDBOX": root,
            "LANG": "C.UTF-8",
            "USER": "shell",
            "LOGNAME": "shell",
            "SHELL": f"{root}/system/bin/sh",
            "HOSTNAME": "localhost",
        }
        if term:
            env["TERM"] = term
        return env

    def shell_argv(self, command: str | None) -> list[str]:
        """argv that runs a device command line (None: a shell reading stdin).

        This is the one place a command string reaches a host shell, on purpose: it is
        the device's shell. It is rewritten and fenced as the module doc says.
        """
        if command is None:
            # An interactive shell's lines cannot be rewritten before they run: it is
            # offered only inside the Landlock fence (the server checks).
            argv = ["/bin/sh", "-s"]
        else:
            argv = ["/bin/sh", "-c", SHELL_PRELUDE + self.rewrite_command(command)]
        if not self.landlock_abi:
            return argv
        fence = [sys.executable, "-IS", str(Path(landlock_exec.__file__).resolve())]
        fence += ["--rw", str(self.root)]
        trees = set(HOST_READ_TREES)
        for prefix in (sys.prefix, sys.base_prefix, sys.exec_prefix):
            trees.add(os.path.realpath(prefix))
        trees.add(os.path.dirname(os.path.realpath(sys.executable)))
        for tree in sorted(trees):
            fence += ["--ro", tree]
        for path in HOST_READ_FILES:
            fence += ["--ro-file", path]
        for path in HOST_RW_FILES:
            fence += ["--rw-file", path]
        return [*fence, "--", *argv]

    def cwd(self) -> str:
        return str(self.root)

    def is_safe_host_path(self, host: str) -> bool:
        """Whether ``host`` (a mapped path) resolves inside the sandbox."""
        return self._inside(os.path.realpath(host))

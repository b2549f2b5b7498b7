"""Android commands of the emulated phone that the host has no tool for.

Copied by :mod:`devices.emulators.phone` to the sandbox's
``/system/bin/edgebench-tools`` (``#!`` the host Python with ``-IS``: standard
library only, nothing from the environment) with ``getprop``, ``setprop``,
``dumpsys``, ``taskset``, ``id`` and ``nproc`` linked to it; it dispatches on the
name it was called by, as toybox does. The device's property table and CPU count are
read from ``/system/etc/edgebench-device.json`` next to it; the battery from the
simulated sysfs files the server keeps current.
"""

from __future__ import annotations

import json
import os
import sys
import time

# /system/bin/edgebench-tools -> sandbox root, whatever name it was called by.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
CONFIG = os.path.join(ROOT, "system", "etc", "edgebench-device.json")
BATTERY = os.path.join(ROOT, "sys", "class", "power_supply", "battery")


def _config() -> dict[str, object]:
    with open(CONFIG) as file:
        return json.load(file)


def getprop(args: list[str]) -> int:
    props: dict[str, str] = _config()["props"]  # type: ignore[assignment]
    if not args:
        for key in sorted(props):
            print(f"[{key}]: [{props[key]}]")
        return 0
    # getprop KEY [DEFAULT]: an unknown key prints the default (or an empty line).
    print(props.get(args[0], args[1] if len(args) > 1 else ""))
    return 0


def setprop(args: list[str]) -> int:
    # The shell user may not set properties on a user build; neither here.
    print("Failed to set property (emulated phone: properties are read-only)", file=sys.stderr)
    return 1


def _read(name: str, default: str = "0") -> str:
    try:
        with open(os.path.join(BATTERY, name)) as file:
            return file.read().strip()
    except OSError:
        return default


def dumpsys_battery() -> int:
    status = _read("status", "Unknown")
    code = {"Charging": 2, "Discharging": 3, "Not charging": 4, "Full": 5}.get(status, 1)
    charging = status in ("Charging", "Full")
    print("Current Battery Service state:")
    print(f"  AC powered: {'true' if charging else 'false'}")
    print("  USB powered: false")
    print("  Wireless powered: false")
    print("  Dock powered: false")
    print(f"  Max charging current: {1500000 if charging else 0}")
    print(f"  Max charging voltage: {5000000 if charging else 0}")
    print(f"  Charge counter: {_read('charge_counter')}")
    print(f"  status: {code}")
    print("  health: 2")
    print("  present: true")
    print(f"  level: {_read('capacity')}")
    print("  scale: 100")
    print(f"  voltage: {int(_read('voltage_now')) // 1000}")
    print(f"  temperature: {_read('temp')}")
    print("  technology: Li-ion")
    return 0


def _find_pids(target: str) -> list[int]:
    """The device's processes (command lines naming a file in this sandbox) by pid or name."""
    pids: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                argv = [a.decode(errors="replace") for a in file.read().split(b"\0") if a]
        except OSError:
            continue
        inside = [a for a in argv if a.startswith(ROOT + "/")]
        if not inside:
            continue
        names = {os.path.basename(argv[0]), os.path.basename(inside[0])}
        if target == entry or target in names:
            pids.append(int(entry))
    return pids


def _memory_kib(pid: int) -> dict[str, int]:
    """Pss/Rss/... in KiB: smaps_rollup where readable, else status (Pss ~ Rss there)."""
    fields: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as file:
            for line in file:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    fields[key] = int(parts[0])
    except OSError:
        # smaps needs ptrace access, which a sandboxed sibling does not have.
        with open(f"/proc/{pid}/status") as file:
            for line in file:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmSwap"):
                    fields[key] = int(rest.split()[0])
        fields["Rss"] = fields.get("VmRSS", 0)
        fields["Pss"] = fields["Rss"]
        fields["Private_Dirty"] = fields.get("RssAnon", 0)
        fields["Private_Clean"] = 0
        fields["SwapPss"] = fields.get("VmSwap", 0)
    return fields


def dumpsys_meminfo(args: list[str]) -> int:
    targets = [a for a in args if not a.startswith("-")]
    print("Applications Memory Usage (in Kilobytes):")
    uptime_ms = int(time.monotonic() * 1000)
    print(f"Uptime: {uptime_ms} Realtime: {uptime_ms}")
    if not targets:
        print("\nTotal PSS by process:")
        for pid in _find_pids(""):
            print(f"    {_memory_kib(pid).get('Pss', 0):>8,}K: pid {pid}")
        return 0
    pids = _find_pids(targets[0])
    if not pids:
        print(f"No process found for: {targets[0]}")
        return 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                argv = [a.decode(errors="replace") for a in file.read().split(b"\0") if a]
            mem = _memory_kib(pid)
        except OSError:
            continue
        inside = [a for a in argv if a.startswith(ROOT + "/")]
        name = os.path.basename(inside[0] if inside else argv[0])
        pss, rss = mem.get("Pss", 0), mem.get("Rss", 0)
        dirty, clean, swap = mem.get("Private_Dirty", 0), mem.get("Private_Clean", 0), 0
        swap = mem.get("SwapPss", 0)
        print(f"\n** MEMINFO in pid {pid} [{name}] **")
        print(
            "                   Pss  Private  Private  SwapPss      Rss     Heap     Heap     Heap"
        )
        print(
            "                 Total    Dirty    Clean    Dirty    Total     Size    Alloc     Free"
        )
        print(
            "                ------   ------   ------   ------   ------   ------   ------   ------"
        )
        row = f"{pss:>8} {dirty:>8} {clean:>8} {swap:>8} {rss:>8}"
        print(f"  Native Heap {row} {0:>8} {0:>8} {0:>8}")
        print(f"        TOTAL {row} {0:>8} {0:>8} {0:>8}")
        print("\n App Summary")
        print("                       Pss(KB)                        Rss(KB)")
        print("                        ------                         ------")
        print(f"         Native Heap: {pss:>8}                       {rss:>8}")
        print(
            f"\n           TOTAL PSS: {pss:>8}            TOTAL RSS: {rss:>8}"
            f"       TOTAL SWAP PSS: {swap:>8}"
        )
    return 0


def dumpsys(args: list[str]) -> int:
    if args and args[0] == "battery":
        return dumpsys_battery()
    if args and args[0] == "meminfo":
        return dumpsys_meminfo(args[1:])
    if not args:
        print("Currently running services:\n  battery\n  meminfo")
        return 0
    print(f"Can't find service: {args[0]}")
    return 0


def _cpus_from(mask: str, as_list: bool) -> set[int]:
    if as_list:
        cpus: set[int] = set()
        for part in mask.split(","):
            lo, _, hi = part.partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
        return cpus
    value = int(mask, 16)
    return {bit for bit in range(64) if value >> bit & 1}


def taskset(args: list[str]) -> int:
    """``taskset [-a] [-c] MASK CMD...`` / ``taskset -p [MASK] PID`` (toybox's forms).

    The device's CPUs are mapped onto the host's (device CPU i runs on host CPU
    i mod n), so a big-core mask like ``f0`` works on a 2-CPU host.
    """
    as_list = pid_mode = False
    while args and args[0].startswith("-") and len(args[0]) > 1:
        flags = args.pop(0)[1:]
        as_list |= "c" in flags
        pid_mode |= "p" in flags
    device_cpus = int(_config()["cpus"])  # type: ignore[call-overload]
    if pid_mode:
        if len(args) == 1:
            print(f"pid {args[0]}'s current affinity mask: {(1 << device_cpus) - 1:x}")
            return 0
        if len(args) == 2:
            print(f"pid {args[1]}'s new affinity mask: {args[0]}")
            return 0
    if len(args) < 2:
        print("usage: taskset [-ap] [mask] [PID | cmd [args...]]", file=sys.stderr)
        return 1
    try:
        wanted = {c for c in _cpus_from(args[0], as_list) if c < device_cpus}
    except ValueError:
        print(f"taskset: bad mask '{args[0]}'", file=sys.stderr)
        return 1
    if not wanted:
        print("taskset: sched_setaffinity: Invalid argument", file=sys.stderr)
        return 1
    host = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {host[c % len(host)] for c in wanted})
    os.environ["EDGEBENCH_DEVICE_CPUS"] = str(len(wanted))  # what nproc will say
    try:
        os.execvp(args[1], args[1:])
    except OSError as error:
        print(f"taskset: exec {args[1]}: {error.strerror}", file=sys.stderr)
        return 127
    return 0  # not reached


def nproc(args: list[str]) -> int:
    print(os.environ.get("EDGEBENCH_DEVICE_CPUS") or _config()["cpus"])
    return 0


SHELL_ID = (
    "uid=2000(shell) gid=2000(shell) groups=2000(shell),1004(input),1007(log),1011(adb),"
    "1015(sdcard_rw),1028(sdcard_r),1078(ext_data_rw),1079(ext_obb_rw),3001(net_bt_admin),"
    "3002(net_bt),3003(inet),3006(net_bw_stats),3009(readproc),3011(uhid),3012(readtracefs) "
    "context=u:r:shell:s0"
)


def id_(args: list[str]) -> int:
    if "-u" in args or "-g" in args:
        print("shell" if "-n" in args else 2000)
    else:
        print(SHELL_ID)
    return 0


COMMANDS = {
    "getprop": getprop,
    "setprop": setprop,
    "dumpsys": dumpsys,
    "taskset": taskset,
    "nproc": nproc,
    "id": id_,
}


def main() -> int:
    name = os.path.basename(sys.argv[0])
    command = COMMANDS.get(name)
    if command is None:
        print(f"edgebench-tools: unknown command {name}", file=sys.stderr)
        return 127
    try:
        return command(sys.argv[1:])
    except BrokenPipeError:
        return 141  # `getprop | head` on a real shell
    except (OSError, ValueError) as error:
        print(f"{name}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

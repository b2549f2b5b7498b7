"""Run a command confined by Linux Landlock (the emulated phone's second fence).

``python -IS landlock_exec.py [--rw DIR]... [--ro DIR]... [--rw-file F]...
[--ro-file F]... -- ARGV...`` restricts itself (and so ``ARGV`` and everything it
starts) to: every file access under the ``--rw`` trees, read and execute under the
``--ro`` trees, read/write on single ``--rw-file`` files (``/dev/null``); no TCP
bind/connect (ABI 4+); no signals to and no abstract UNIX sockets of processes
outside the domain (ABI 6+). Then it ``exec``s ``ARGV``. A kernel without Landlock
exits 125 before running anything: the caller probes :func:`abi_version` first and
only uses this helper where it is available.

Standard library only (ctypes); it runs with ``-IS`` so that nothing from the
environment or site-packages is imported before the fence is up.
"""

from __future__ import annotations

import ctypes
import os
import sys

# The generic syscall numbers, the same on x86_64 and aarch64.
SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38

FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
FS_IOCTL_DEV = 1 << 15  # ABI 5
FS_ALL_V1 = (1 << 13) - 1
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def abi_version() -> int:
    """The kernel's Landlock ABI version, 0 where Landlock is missing or disabled."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        result = _libc().syscall(
            SYS_CREATE_RULESET, None, ctypes.c_size_t(0), CREATE_RULESET_VERSION
        )
    except (OSError, AttributeError):
        return 0
    return max(0, int(result))


def _fs_all(abi: int) -> int:
    access = FS_ALL_V1
    if abi >= 2:
        access |= FS_REFER
    if abi >= 3:
        access |= FS_TRUNCATE
    if abi >= 5:
        access |= FS_IOCTL_DEV
    return access


def restrict(rw: list[str], ro: list[str], rw_files: list[str], ro_files: list[str]) -> None:
    """Confine this process; raises OSError where the kernel refuses."""
    abi = abi_version()
    if abi < 1:
        raise OSError("Landlock is not available on this kernel")
    libc = _libc()
    handled = _fs_all(abi)
    attr = _RulesetAttr(handled, 0, 0)
    size = 8
    if abi >= 4:
        attr.handled_access_net = NET_BIND_TCP | NET_CONNECT_TCP
        size = 16
    if abi >= 6:
        attr.scoped = SCOPE_ABSTRACT_UNIX | SCOPE_SIGNAL
        size = 24
    ruleset = libc.syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0)
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    file_rights = (
        FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | (handled & (FS_TRUNCATE | FS_IOCTL_DEV))
    )
    read_exec = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
    rules = (
        [(path, handled) for path in rw]
        + [(path, read_exec) for path in ro]
        + [(path, file_rights) for path in rw_files]
        + [(path, FS_READ_FILE | FS_EXECUTE) for path in ro_files]
    )
    for path, access in rules:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue  # a tree this host does not have (/lib32, /libx32)
        try:
            if not os.path.isdir(path):
                access &= file_rights  # a file rule may carry file rights only
            rule = _PathBeneath(access, fd)
            if libc.syscall(SYS_ADD_RULE, ruleset, RULE_PATH_BENEATH, ctypes.byref(rule), 0) < 0:
                raise OSError(ctypes.get_errno(), f"landlock_add_rule {path}")
        finally:
            os.close(fd)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.syscall(SYS_RESTRICT_SELF, ruleset, 0) < 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    os.close(ruleset)


def main(argv: list[str]) -> int:
    lists: dict[str, list[str]] = {"--rw": [], "--ro": [], "--rw-file": [], "--ro-file": []}
    i = 0
    while i < len(argv) and argv[i] != "--":
        if argv[i] not in lists or i + 1 >= len(argv):
            print(f"landlock_exec: bad argument {argv[i]!r}", file=sys.stderr)
            return 125
        lists[argv[i]].append(argv[i + 1])
        i += 2
    command = argv[i + 1 :]
    if not command:
        print("landlock_exec: no command", file=sys.stderr)
        return 125
    try:
        restrict(lists["--rw"], lists["--ro"], lists["--rw-file"], lists["--ro-file"])
    except OSError as error:
        print(f"landlock_exec: {error}", file=sys.stderr)
        return 125
    try:
        os.execv(command[0], command)
    except OSError as error:
        print(f"landlock_exec: exec {command[0]}: {error.strerror}", file=sys.stderr)
        return 127
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The controller's own machine as a device: the agent runs in a subprocess.

It implements exactly the interface the remote transports implement, so the
scheduler cannot tell the difference; only the file copy and process start are
local operations.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from devices.errors import TransportError, TransportTimeout
from devices.transport import (
    CommandResult,
    PosixHost,
    Stream,
    register_transport,
    sha256_file,
)


class LocalProcess(Stream):
    def __init__(self, argv: list[str], cwd: str, device: str) -> None:
        self.device = device
        try:
            # A new session gives the agent its own process group, so terminate()
            # also stops anything it started.
            self._proc = subprocess.Popen(
                argv,
                cwd=cwd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as e:
            raise TransportError(f"cannot start {argv[0]}: {e.strerror}", device=device) from e
        assert self._proc.stdout is not None
        self._start_readers(self._proc.stdout, self._proc.stderr)

    def write_line(self, line: str) -> None:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(line.encode() + b"\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, ValueError) as e:
            raise TransportError(
                f"agent process is gone (exit {self._proc.poll()}): {self.stderr_tail()[-500:]}",
                device=self.device,
            ) from e

    def terminate(self) -> None:
        if self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._proc.wait()

    def wait(self, timeout: float) -> int | None:
        try:
            return self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None


@register_transport("local")
class LocalTransport(PosixHost):
    """Runs on the controller itself; workdir defaults to $EDGEBENCH_HOME/devices/NAME."""

    @property
    def workdir(self) -> str:
        configured = self.device.options.get("workdir")
        path = Path(configured) if configured else self.workspace / "devices" / self.device.name
        return str(path.resolve())

    @property
    def python(self) -> str:
        # The controller's own interpreter has the runtimes edgebench installed.
        return str(self.device.options.get("python") or sys.executable)

    def run(self, argv: list[str], timeout: float = 60.0) -> CommandResult:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TransportTimeout(
                f"{argv[0]} did not finish within {timeout:g} s", device=self.device.name
            ) from None
        except OSError as e:
            raise TransportError(
                f"cannot run {argv[0]}: {e.strerror}", device=self.device.name
            ) from e
        return CommandResult(argv, done.returncode, done.stdout, done.stderr)

    def open_stream(self, argv: list[str]) -> Stream:
        Path(self.workdir).mkdir(parents=True, exist_ok=True)
        return LocalProcess(argv, self.workdir, self.device.name)

    def remote_sha256(self, remote_path: str) -> str | None:
        path = Path(remote_path)
        return sha256_file(path) if path.is_file() else None

    def _copy_to_device(self, local: Path, remote_path: str) -> None:
        dest = Path(remote_path)
        tmp = dest.with_name(dest.name + ".part")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, tmp)
            os.replace(tmp, dest)  # atomic: a half-copied file never has the final name
        except OSError as e:  # a full or read-only work dir: the device's problem
            tmp.unlink(missing_ok=True)
            raise TransportError(
                f"cannot copy {local.name} to {dest.parent}: {e.strerror or e}",
                device=self.device.name,
            ) from e

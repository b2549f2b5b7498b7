"""Errors raised while reaching or driving a device.

These live here (not in ``harness.errors``) because ``devices`` and ``runners``
must not import ``harness``; ``harness.errors`` re-exports them and documents the
whole hierarchy. Each carries the context a lab engineer needs to act on it.
"""

from __future__ import annotations


class DeviceError(Exception):
    """Base class for everything that goes wrong on the way to, or on, a device."""

    def __init__(self, message: str, *, device: str | None = None) -> None:
        self.device = device
        super().__init__(f"device {device!r}: {message}" if device else message)


class UnknownTransportError(DeviceError):
    """A device names a transport that is not registered."""


class TransportError(DeviceError):
    """The transport failed: connection lost, process died, file push failed."""


class TransportTimeout(TransportError):
    """No answer from the device within the allowed time."""


class CommandError(TransportError):
    """A command on the device exited non-zero."""

    def __init__(
        self, argv: list[str], returncode: int, stderr: str, *, device: str | None = None
    ) -> None:
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr
        tail = stderr.strip().splitlines()[-1] if stderr.strip() else "(no stderr)"
        super().__init__(f"{argv[0]} exited with {returncode}: {tail}", device=device)


class AgentError(DeviceError):
    """The runner agent answered a request with a structured error."""

    def __init__(self, kind: str, message: str, *, device: str | None = None) -> None:
        self.kind = kind
        super().__init__(f"agent error [{kind}]: {message}", device=device)

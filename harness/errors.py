"""Every error edgebench reports, in one hierarchy.

``EdgebenchError`` and its subclasses are the controller's own. Lower layers
cannot import ``harness`` (see DESIGN.md), so their errors are defined beside
them and re-exported here; the CLI catches ``USER_FACING`` and prints one line.

    EdgebenchError
        UsageError            bad arguments or options (exit 2)
        StoreError            results database cannot be opened/used, unknown run
        RunError              a run cannot start or resume
    suites.errors.SuiteError  a suite or lab file is invalid: file, key, line (exit 2)
    suites.errors.BuildError  building a variant failed
    devices.errors.DeviceError
        UnknownTransportError
        TransportError
            TransportTimeout
            CommandError      argv, returncode, stderr
        AgentError            kind, message (structured reply of the agent)
        devices.power.errors.ParseError     a sensor tool's output did not parse
        runners.trtexec.TrtexecParseError   a trtexec log has no performance summary
"""

from __future__ import annotations

from devices.errors import (
    AgentError,
    CommandError,
    DeviceError,
    TransportError,
    TransportTimeout,
    UnknownTransportError,
)
from suites.errors import BuildError, SuiteError


class EdgebenchError(Exception):
    """Base class of the controller's own errors."""

    exit_code = 1


class UsageError(EdgebenchError):
    """The user asked for something that cannot be done as asked."""

    exit_code = 2


class StoreError(EdgebenchError):
    """The results database cannot be opened or does not hold what was asked for."""

    exit_code = 2


class RunError(EdgebenchError):
    """A run cannot be started or resumed."""


# What the CLI reports as one line instead of a traceback.
USER_FACING: tuple[type[Exception], ...] = (EdgebenchError, SuiteError, BuildError, DeviceError)


def exit_code_for(exc: Exception) -> int:
    if isinstance(exc, SuiteError):
        return 2
    return getattr(exc, "exit_code", 1)


__all__ = [
    "AgentError",
    "BuildError",
    "CommandError",
    "DeviceError",
    "EdgebenchError",
    "RunError",
    "StoreError",
    "SuiteError",
    "TransportError",
    "TransportTimeout",
    "UnknownTransportError",
    "UsageError",
    "USER_FACING",
    "exit_code_for",
]

"""The error raised when a power tool's output cannot be read.

It is a :class:`devices.errors.DeviceError` (the CLI reports it as one line) and a
``ValueError`` (it is bad input, not a broken connection). It carries the offending
line and, where known, its number and the tool that printed it, because the first
thing a lab engineer asks is "which line?".
"""

from __future__ import annotations

from devices.errors import DeviceError

# Lines are quoted in messages; a runaway line (binary garbage, a missing newline for
# minutes) would otherwise make the message unreadable.
_QUOTE_MAX = 160


def quote_line(line: str) -> str:
    """``line`` as it appears in an error message: repr'd, shortened if very long."""
    if len(line) > _QUOTE_MAX:
        return repr(line[:_QUOTE_MAX]) + f"... ({len(line)} chars)"
    return repr(line)


class ParseError(DeviceError, ValueError):
    """Output of a power tool that does not have the documented format."""

    def __init__(
        self,
        reason: str,
        *,
        line: str,
        line_number: int | None = None,
        source: str | None = None,
        device: str | None = None,
    ) -> None:
        self.reason = reason
        self.line = line
        self.line_number = line_number
        self.source = source
        where = source or "tool output"
        if line_number is not None:
            where += f" line {line_number}"
        super().__init__(f"{where}: {reason}: {quote_line(line)}", device=device)


class PowerSourceError(DeviceError, ValueError):
    """A power source that is not registered, or options that do not let it be sampled
    (the CLI reports it as one line)."""

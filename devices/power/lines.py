"""Lenient parsing of line-oriented tool logs: keep what parses, count what does not.

A sampler that runs for minutes will see a truncated last line (the process was
stopped mid-write) or two lines glued together (a partial read). Failing the whole
run for one such line would throw away good samples, and silently dropping it would
hide a broken sensor; so every skipped line is kept with its reason, and the caller
decides (e.g. fail when more than a few percent are skipped).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from devices.power.errors import ParseError

T = TypeVar("T")


@dataclass(frozen=True)
class SkippedLine:
    """A line that was not parsed, with why."""

    line_number: int  # 1-based
    line: str
    reason: str


@dataclass(frozen=True)
class ParsedLines(Generic[T]):
    """What a lenient parse produced: the parsed records and the skipped lines."""

    records: list[T] = field(default_factory=list)
    skipped: list[SkippedLine] = field(default_factory=list)

    @property
    def skipped_count(self) -> int:
        return len(self.skipped)


def parse_lines(lines: str | Iterable[str], parse_one: Callable[[str], T]) -> ParsedLines[T]:
    """Apply ``parse_one`` to each non-blank line; a :class:`ParseError` skips the line.

    Blank lines are neither records nor skipped lines. Any other exception from
    ``parse_one`` is a bug and propagates.
    """
    if isinstance(lines, str):
        lines = lines.splitlines()
    result: ParsedLines[T] = ParsedLines()
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        try:
            result.records.append(parse_one(line))
        except ParseError as exc:
            result.skipped.append(SkippedLine(number, line, exc.reason))
    return result

"""Host side of the EEMBC / MLPerf Tiny text protocol (``runners/mcu/PROTOCOL.md``),
driven the way MLPerf Tiny's runner drives a device under test: ``%``-terminated
commands, replies read line by line up to ``m-ready``; ``e-`` lines are errors.

It works against edgebench's own firmware and against MLPerf Tiny reference
firmware (``db`` chunks are kept under that firmware's 80-character command
buffer).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from devices.errors import TransportTimeout
from devices.transport import ByteStream
from runners.mcu.protocol import ProtocolError

DB_CHUNK = 32  # bytes per `db` command: 64 hex digits + "db " + "%" < 80
_BRACKETS = re.compile(r"\[(.*)\]")
_LAP_US = re.compile(r"[0-9]{1,20}")


@dataclass(frozen=True)
class EembcProfile:
    profile: str  # m-profile-[...]
    model: str | None  # m-model-[...], when the firmware names it


class EembcClient:
    def __init__(
        self, line: ByteStream, *, timeout: float = 5.0, device: str | None = None
    ) -> None:
        self.line = line
        self.timeout = timeout
        self.device = device
        self._pending = b""
        self.last_results: list[float] = []  # from the last infer()
        self.settle()

    def settle(self, quiet_s: float = 0.2, limit_s: float = 2.0) -> None:
        """Drop what the device says unasked (its boot banner ends with an
        ``m-ready`` that would pass for the reply to the first command): read
        until it has been quiet for ``quiet_s``."""
        self.line.discard_input()
        end = time.monotonic() + limit_s
        while time.monotonic() < end and self.line.read(4096, quiet_s):
            pass
        self._pending = b""

    def command(self, text: str, timeout: float | None = None) -> list[str]:
        """Send ``text%``; the reply lines before ``m-ready`` (``m-``/``e-`` lines
        only: anything else on the line is noise). Raises ProtocolError on an
        ``e-`` line, TransportTimeout when ``m-ready`` does not come in time."""
        wait = self.timeout if timeout is None else timeout
        self.line.discard_input()
        self._pending = b""
        self.line.write(text.encode("ascii") + b"%")
        deadline = time.monotonic() + wait
        lines: list[str] = []
        errors: list[str] = []
        while True:
            while b"\n" in self._pending:
                raw, self._pending = self._pending.split(b"\n", 1)
                got = raw.decode("ascii", "replace").strip()
                if got == "m-ready":
                    if errors:
                        raise ProtocolError(f"{text!r}: {'; '.join(errors)}", device=self.device)
                    return lines
                if got.startswith("e-"):
                    errors.append(got)
                elif got.startswith("m-"):
                    lines.append(got)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TransportTimeout(
                    f"no m-ready after {text!r} within {wait:g} s (got {lines[-3:]})",
                    device=self.device,
                )
            self._pending += self.line.read(4096, min(left, 0.25))

    def _lap_us(self, line: str) -> int:
        """The microseconds of one ``m-lap-us-<t>`` line."""
        value = line[len("m-lap-us-") :]
        # A board timer is a 32- or 64-bit count; anything else on the line is noise
        # that int() would raise a plain ValueError for.
        if not _LAP_US.fullmatch(value):
            raise ProtocolError(f"not a lap time: {line[:80]!r}", device=self.device)
        return int(value)

    def _bracketed(self, lines: list[str], prefix: str) -> str | None:
        for got in lines:
            if got.startswith(prefix):
                m = _BRACKETS.search(got)
                return m.group(1) if m else got[len(prefix) :]
        return None

    def name(self) -> str:
        lines = self.command("name")
        found = self._bracketed(lines, "m-name-")
        if found is None:
            raise ProtocolError(f"name%: no m-name- line in {lines}", device=self.device)
        return found

    def profile(self) -> EembcProfile:
        lines = self.command("profile")
        profile = self._bracketed(lines, "m-profile-")
        if profile is None:
            raise ProtocolError(f"profile%: no m-profile- line in {lines}", device=self.device)
        return EembcProfile(profile, self._bracketed(lines, "m-model-"))

    def load(self, data: bytes) -> None:
        """Fill the first input: ``db load N``, then the bytes as hex in chunks."""
        lines = self.command(f"db load {len(data)}")
        if not any(f"Expecting {len(data)} bytes" in got for got in lines):
            raise ProtocolError(f"db load: unexpected reply {lines}", device=self.device)
        done = False
        for offset in range(0, len(data), DB_CHUNK):
            lines = self.command("db " + data[offset : offset + DB_CHUNK].hex())
            done = done or "m-load-done" in lines
        if data and not done:
            raise ProtocolError("db: the device never said m-load-done", device=self.device)

    def infer(self, n: int, warmup: int = 0, timeout: float | None = None) -> list[int]:
        """Run ``warmup`` then ``n`` inferences; the ``m-lap-us-`` timestamps
        (microseconds of board time; the time per inference is their difference
        divided by ``n``). The results that follow are kept in ``last_results``."""
        lines = self.command(f"infer {n} {warmup}", timeout=timeout)
        laps = [self._lap_us(got) for got in lines if got.startswith("m-lap-us-")]
        if "m-infer-done" not in lines or len(laps) < 2:
            raise ProtocolError(f"infer: incomplete reply {lines[-4:]}", device=self.device)
        self.last_results = self._results(lines)
        return laps

    def results(self) -> list[float]:
        return self._results(self.command("results"))

    def _results(self, lines: list[str]) -> list[float]:
        found = self._bracketed(lines, "m-results-")
        if found is None:
            raise ProtocolError(f"no m-results- line in {lines[-3:]}", device=self.device)
        try:
            return [float(v) for v in found.split(",") if v.strip()]
        except ValueError:
            raise ProtocolError(
                f"m-results-: not numbers: {found[:80]}", device=self.device
            ) from None

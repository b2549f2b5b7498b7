"""The agent file driven as a bare subprocess with raw JSON lines, the way a
compatible agent written from runners/agent/PROTOCOL.md would be tested."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from devices.local import LocalProcess
from runners.agent_client import AGENT_PATH


class RawAgent:
    """Every read has a timeout, so a broken agent fails a test instead of hanging it."""

    def __init__(self, cwd: Path) -> None:
        self.proc = LocalProcess([sys.executable, "-u", str(AGENT_PATH)], str(cwd), "raw")
        self._id = 0

    def send_line(self, line: str) -> dict[str, Any]:
        self.proc.write_line(line)
        reply = self.proc.read_line(timeout=60)
        assert reply is not None, f"agent exited; stderr:\n{self.proc.stderr_tail()}"
        return json.loads(reply)

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        self._id += 1
        reply = self.send_line(json.dumps({"id": self._id, "op": op, **fields}))
        assert reply["id"] == self._id
        return reply

    def ok(self, op: str, **fields: Any) -> dict[str, Any]:
        reply = self.call(op, **fields)
        assert reply["ok"] is True, reply
        return reply["result"]

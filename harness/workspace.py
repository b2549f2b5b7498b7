"""Where edgebench keeps its state: EDGEBENCH_HOME and the results database URL."""

from __future__ import annotations

import functools
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Workspace:
    home: Path
    db_url: str

    @classmethod
    def from_env(cls, db: str | None = None, home: str | None = None) -> Workspace:
        root = Path(home or os.environ.get("EDGEBENCH_HOME") or ".edgebench").resolve()
        url = db or os.environ.get("EDGEBENCH_DB") or f"sqlite:///{root / 'edgebench.db'}"
        return cls(home=root, db_url=url)

    def ensure(self) -> Workspace:
        from harness.errors import UsageError

        if self.home.exists() and not self.home.is_dir():
            raise UsageError(f"EDGEBENCH_HOME {self.home}: is a file, not a folder")
        try:
            # Readable by its user only: the store holds device addresses and options.
            self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
            probe = self.home / ".write-test"
            probe.touch()
            probe.unlink()
        except OSError as e:
            raise UsageError(
                f"EDGEBENCH_HOME {self.home}: cannot use it ({e.strerror or e})"
            ) from None
        return self

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def builds_dir(self) -> Path:
        return self.home / "builds"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"


@functools.cache
def git_commit(cwd: Path | None = None) -> str | None:
    """Commit of the edgebench checkout (provenance); None outside a git tree."""
    here = cwd or Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None

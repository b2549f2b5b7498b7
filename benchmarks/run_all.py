"""`make bench`: every benchmark of edgebench itself, one after the other, and their
figures written into benchmarks/RESULTS.md (the section between the `make bench`
markers is replaced; everything else in the file is kept).

Each script prints a markdown section starting with a `### ` line (anything a model
converter prints before it is dropped) and exits 0; a script that fails is reported
as failed in its section, and `make bench` exits non-zero after running the rest.

Usage: .venv/bin/python benchmarks/run_all.py [--only fidelity,stopping] [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.machine import machine_line  # noqa: E402

RESULTS = REPO / "benchmarks" / "RESULTS.md"
BEGIN, END = "<!-- make bench: begin -->", "<!-- make bench: end -->"
PY = sys.executable
# (name, argv): fastest first, so a broken setup shows early.
SCRIPTS: list[tuple[str, list[str]]] = [
    ("core", [PY, "-m", "pytest", "benchmarks", "--benchmark-only", "-q"]),
    ("fidelity", [PY, "benchmarks/fidelity.py"]),
    ("stopping", [PY, "benchmarks/stopping.py", "--rounds", "2"]),
    ("overhead", [PY, "benchmarks/overhead.py", "--rounds", "1"]),
    ("scale", [PY, "benchmarks/scale.py"]),
]


def section(stdout: str) -> str:
    """The script's markdown: from its first `### ` line, or its last lines verbatim."""
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("### "):
            return "\n".join(lines[i:]).rstrip() + "\n"
    return "```\n" + "\n".join(lines[-30:]) + "\n```\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated script names")
    parser.add_argument("--quick", action="store_true", help="smoke sizes; RESULTS.md untouched")
    args = parser.parse_args()
    # The MCU footprint table (counts, not times) is its own command:
    # python benchmarks/mcu_footprint.py (about a minute).
    chosen = [s for s in SCRIPTS if not args.only or s[0] in args.only.split(",")]
    parts, failed, started = [], [], time.perf_counter()
    for name, argv in chosen:
        if args.quick and name != "core":
            argv = [*argv, "--quick"]
        t0 = time.perf_counter()
        print(f"== {name}: {' '.join(argv[1:])}", flush=True)
        proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if name == "core":
            # pytest-benchmark's own table, as it printed it.
            body = "### Core hot paths (pytest-benchmark)\n\n```\n"
            body += "\n".join(ln for ln in proc.stdout.splitlines() if ln.strip()) + "\n```\n"
        else:
            body = section(proc.stdout)
        if proc.returncode != 0:
            failed.append(name)
            body += f"\n**FAILED** (exit {proc.returncode}):\n```\n{proc.stderr[-2000:]}\n```\n"
        parts.append(body + f"\n_{name}: {wall:.0f} s wall._\n")
        print(f"   {wall:.0f} s, exit {proc.returncode}", flush=True)
    total = time.perf_counter() - started
    head = (
        f"## {time.strftime('%Y-%m-%d')} — `make bench`\n\n"
        f"{machine_line()} at the end. Command: `make bench` "
        f"(`python benchmarks/run_all.py`), {total / 60:.1f} min in all.\n"
    )
    text = "\n".join([BEGIN, head, *parts, END]) + "\n"
    if args.quick:
        sys.stdout.write(text)
    else:
        old = RESULTS.read_text()
        if BEGIN in old and END in old:
            before, rest = old.split(BEGIN, 1)
            new = before + text.rstrip("\n") + rest.split(END, 1)[1]
        else:
            new = old.rstrip("\n") + "\n\n" + text
        RESULTS.write_text(new)
        print(f"wrote {RESULTS.relative_to(REPO)} ({total / 60:.1f} min)")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

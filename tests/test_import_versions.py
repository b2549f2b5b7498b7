"""`edgebench import` on logs of other tool versions: every figure the tool printed
reaches the store, the CSV export and the report, labelled as the tool's own; a
figure the log does not give is unknown (empty), never zero, never a crash."""

from __future__ import annotations

import csv
import io
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import Runner

DATA = Path(__file__).parent / "data"


def _metrics(eb: Runner) -> dict[str, float]:
    db = eb.env["EDGEBENCH_DB"].removeprefix("sqlite:///")  # type: ignore[attr-defined]
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT name, value FROM metrics").fetchall())


def _csv(eb: Runner) -> dict[str, str]:
    (row,) = csv.DictReader(io.StringIO(eb("export", "latest").stdout))
    return row


def test_benchmark_model_without_percentiles_keeps_the_timed_phase(eb: Runner) -> None:
    """A TF 2.4 build prints the timed phase as count/first/curr/min/max/avg/std only."""
    log = DATA / "benchmark_model" / "tf2.4_x86_64_desktop.txt"
    eb("import", "--tool", "benchmark_model", str(log))
    m = _metrics(eb)
    assert m["latency_mean"] == pytest.approx(4176.38e-6)
    assert m["latency_min"] == pytest.approx(4019e-6) and m["latency_max"] == pytest.approx(5270e-6)
    assert m["latency_std"] == pytest.approx(139e-6) and m["latency_n"] == 240
    assert "latency_p50" not in m  # it printed no median: unknown, not the mean
    assert m["init"] == pytest.approx(21462e-6)
    row = _csv(eb)
    assert float(row["latency_mean_s"]) == pytest.approx(4176.38e-6)
    assert row["latency_p50_s"] == ""
    report = eb("report", "latest").stdout
    assert "benchmark_model" in report


@pytest.mark.parametrize(
    "log",
    ["trt8.5.2_orin_nx_summary_only.log", "trt8.4.1_xavier_summary_excerpt_no_throughput.log"],
)
def test_trtexec_plain_summary_without_an_iteration_count(eb: Runner, log: str) -> None:
    proc = eb("import", "--tool", "trtexec", str(DATA / "trtexec" / log), check=False)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    m = _metrics(eb)
    assert m["latency_p50"] > 0 and m["latency_mean"] > 0
    assert "latency_n" not in m  # no count printed: unknown
    row = _csv(eb)
    assert row["latency_n"] == ""
